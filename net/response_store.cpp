// The Responses API store (see response_store.h).
#include "net/response_store.h"

#include "config/prometheus_text.h"
#include "net/auth.h"

namespace troupe {

response_store::response_store(int32_t max_entries, double ttl_s, std::function<clock::time_point()> now)
    : max_entries_(max_entries < 0 ? 0 : max_entries),
      ttl_(std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(ttl_s))),
      now_(std::move(now)) {}

void response_store::on_evict(evict_callback cb) {
  std::lock_guard<std::mutex> lock(mu_);
  on_evict_ = std::move(cb);
}

void response_store::put(stored_response r) {
  r.bytes = sizeof(stored_response) + r.id.size() + r.owner.size() + r.tokens.size() * sizeof(int32_t) +
            r.response.dump().size() + r.input_items.dump().size() + r.conversation.dump().size();
  auto shared = std::make_shared<const stored_response>(std::move(r));
  std::vector<std::shared_ptr<const stored_response>> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (max_entries_ == 0) {
      gone.push_back(shared);
    } else {
      if (auto it = by_id_.find(shared->id); it != by_id_.end()) {
        num_bytes_ -= static_cast<int64_t>(it->second->r->bytes);
        gone.push_back(it->second->r);
        order_.erase(it->second);
        by_id_.erase(it);
      }
      order_.push_back(entry{shared, now_()});
      by_id_[shared->id] = std::prev(order_.end());
      num_bytes_ += static_cast<int64_t>(shared->bytes);
      auto trimmed = trim_locked();
      gone.insert(gone.end(), trimmed.begin(), trimmed.end());
    }
  }
  notify(gone);
}

std::shared_ptr<const stored_response> response_store::get(const std::string& id, const std::string& owner) {
  std::vector<std::shared_ptr<const stored_response>> gone;
  std::shared_ptr<const stored_response> found;
  {
    std::lock_guard<std::mutex> lock(mu_);
    gone = trim_locked();
    auto it = by_id_.find(id);
    if (it != by_id_.end() && constant_time_equal(it->second->r->owner, owner)) found = it->second->r;
  }
  notify(gone);
  return found;
}

bool response_store::erase(const std::string& id, const std::string& owner) {
  std::shared_ptr<const stored_response> victim;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end() || !constant_time_equal(it->second->r->owner, owner)) return false;
    victim = it->second->r;
    num_bytes_ -= static_cast<int64_t>(victim->bytes);
    order_.erase(it->second);
    by_id_.erase(it);
  }
  notify({victim});
  return true;
}

void response_store::expire() {
  std::vector<std::shared_ptr<const stored_response>> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    gone = trim_locked();
  }
  notify(gone);
}

std::vector<std::shared_ptr<const stored_response>> response_store::trim_locked() {
  std::vector<std::shared_ptr<const stored_response>> gone;
  const clock::time_point now = now_();
  // Entries are in insertion order, so the expired ones are at the front.
  while (!order_.empty() && (static_cast<int64_t>(order_.size()) > max_entries_ || now - order_.front().at >= ttl_)) {
    const auto& victim = order_.front().r;
    num_bytes_ -= static_cast<int64_t>(victim->bytes);
    by_id_.erase(victim->id);
    gone.push_back(victim);
    order_.pop_front();
    ++num_evicted_;
  }
  return gone;
}

void response_store::notify(const std::vector<std::shared_ptr<const stored_response>>& gone) {
  if (gone.empty()) return;
  evict_callback cb;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cb = on_evict_;
  }
  if (!cb) return;
  for (const auto& r : gone) cb(*r);
}

response_store::counters response_store::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters{static_cast<int64_t>(order_.size()), num_bytes_, num_evicted_, continued_prompt_tokens_,
                  continued_cached_tokens_};
}

void response_store::count_turn(int64_t prompt_tokens, int64_t cached_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  continued_prompt_tokens_ += prompt_tokens;
  continued_cached_tokens_ += cached_tokens;
}

std::string response_store::metrics_text() const {
  const counters c = stats();
  std::string out;
  out += prom_family_header("troupe:response_store_entries", "gauge", "Responses API responses stored in memory.");
  out += "troupe:response_store_entries " + prom_number(static_cast<double>(c.num_entries)) + "\n";
  out += prom_family_header("troupe:response_store_bytes", "gauge", "Approximate memory held by stored responses.");
  out += "troupe:response_store_bytes " + prom_number(static_cast<double>(c.num_bytes)) + "\n";
  out += prom_family_header("troupe:response_store_evictions_total", "counter",
                            "Stored responses evicted by the size or age bound.");
  out += "troupe:response_store_evictions_total " + prom_number(static_cast<double>(c.num_evicted)) + "\n";
  // The conversation hit rate is cached / prompt over turns that continued a conversation.
  out += prom_family_header("troupe:responses_continued_prompt_tokens_total", "counter",
                            "Prompt tokens of Responses API turns that continued a conversation (previous_response_id).");
  out += "troupe:responses_continued_prompt_tokens_total " + prom_number(static_cast<double>(c.continued_prompt_tokens)) + "\n";
  out += prom_family_header("troupe:responses_continued_cached_tokens_total", "counter",
                            "Of those, the tokens served from the KV cache.");
  out += "troupe:responses_continued_cached_tokens_total " + prom_number(static_cast<double>(c.continued_cached_tokens)) + "\n";
  return out;
}

}  // namespace troupe
