// Conversation pins over the block pool (see conversation_pins.h).
#include "runtime/conversation_pins.h"

namespace troupe {

namespace {
constexpr holder_id k_pin_holder_bit = holder_id{1} << 63;  // sequences' holder ids never set it
}

conversation_pins::conversation_pins(block_pool& pool, conversation_pin_options opts) : pool_(pool), opts_(opts) {}

int32_t conversation_pins::pin(uint64_t key, std::span<const int32_t> tokens, clock::time_point now) {
  expire(now);
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    release(it->second);
    ++counters_.num_released;
  }
  if (opts_.budget_blocks <= 0 || tokens.empty()) return 0;
  const holder_id holder = k_pin_holder_bit | ++next_holder_;
  const block_pool_usage before = pool_.usage();
  auto m = pool_.match_prefix(holder, tokens);
  const block_pool_usage after = pool_.usage();
  counters_.pin_tokens_queried += after.prefix_queries - before.prefix_queries;
  counters_.pin_tokens_found += after.prefix_hits - before.prefix_hits;
  if (!m.ok() || m->block_ids.empty()) {
    pool_.release(holder);
    return 0;
  }
  const int32_t n = static_cast<int32_t>(m->block_ids.size());
  if (n > opts_.budget_blocks) {  // alone larger than the budget: not pinned
    pool_.release(holder);
    ++counters_.num_dropped_budget;
    return 0;
  }
  while (num_pinned_blocks_ + n > opts_.budget_blocks && !pins_.empty()) {
    release(pins_.begin());
    ++counters_.num_dropped_budget;
  }
  pins_.push_back(pin_entry{key, holder, n, now});
  by_key_[key] = std::prev(pins_.end());
  for (int32_t b : m->block_ids) ++pin_refs_[b];
  num_pinned_blocks_ += n;
  ++counters_.num_pinned_total;
  return n;
}

int32_t conversation_pins::unpin(uint64_t key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return 0;
  const int32_t n = it->second->num_blocks;
  release(it->second);
  ++counters_.num_released;
  return n;
}

int32_t conversation_pins::expire(clock::time_point now) {
  const auto max_age = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(opts_.max_age_s));
  int32_t n = 0;
  // Pins are in creation order: the expired ones are at the front.
  while (!pins_.empty() && now - pins_.front().at >= max_age) {
    release(pins_.begin());
    ++counters_.num_expired;
    ++n;
  }
  return n;
}

int32_t conversation_pins::make_room(int64_t need_blocks) {
  int32_t n = 0;
  while (!pins_.empty() && pool_.num_available() < need_blocks) {
    release(pins_.begin());
    ++counters_.num_dropped_pressure;
    ++n;
  }
  return n;
}

int64_t conversation_pins::num_available_with_pins() const {
  int64_t only_pinned = 0;
  for (const auto& [block, refs] : pin_refs_) {
    if (pool_.ref_count(block) == refs) ++only_pinned;
  }
  return pool_.num_available() + only_pinned;
}

void conversation_pins::release(pin_list::iterator it) {
  for (int32_t b : pool_.blocks_of(it->holder)) {
    auto r = pin_refs_.find(b);
    if (r != pin_refs_.end() && --r->second == 0) pin_refs_.erase(r);
  }
  pool_.release(it->holder);
  num_pinned_blocks_ -= it->num_blocks;
  by_key_.erase(it->key);
  pins_.erase(it);
}

conversation_pin_stats conversation_pins::stats() const {
  conversation_pin_stats s = counters_;
  s.num_pins = static_cast<int64_t>(pins_.size());
  s.num_pinned_blocks = num_pinned_blocks_;
  s.budget_blocks = opts_.budget_blocks;
  return s;
}

}  // namespace troupe
