// One step's flat events (see event_batch.h).
#include "runtime/event_batch.h"

namespace troupe {

void event_batch::clear() {
  entries.clear();
  tokens.clear();
  text.clear();
  details.clear();
}

void event_batch::add_event(uint64_t request, int32_t index, std::span<const int32_t> token_ids,
                            std::string_view piece, finish_reason fin, double queue_time_s, const usage_info& usage,
                            std::vector<token_logprobs>&& lp, const std::vector<token_logprobs>* prompt_lp) {
  entry& e = entries.emplace_back();
  e.request = request;
  e.index = index;
  e.finish = fin;
  e.queue_time_s = queue_time_s;
  e.usage = usage;
  e.tokens_begin = static_cast<uint32_t>(tokens.size());
  tokens.insert(tokens.end(), token_ids.begin(), token_ids.end());
  e.tokens_end = static_cast<uint32_t>(tokens.size());
  e.text_begin = static_cast<uint32_t>(text.size());
  text.append(piece);
  e.text_end = static_cast<uint32_t>(text.size());
  if (!lp.empty() || (prompt_lp && !prompt_lp->empty())) {
    e.detail = static_cast<int32_t>(details.size());
    detail& d = details.emplace_back();
    d.logprobs = std::move(lp);
    if (prompt_lp) d.prompt_logprobs = *prompt_lp;
  }
}

void event_batch::add_failure(uint64_t request, const error& err) {
  entry& e = entries.emplace_back();
  e.request = request;
  e.failed = true;
  e.finish = finish_reason::error;
  e.tokens_begin = e.tokens_end = static_cast<uint32_t>(tokens.size());
  e.text_begin = e.text_end = static_cast<uint32_t>(text.size());
  e.detail = static_cast<int32_t>(details.size());
  details.emplace_back().failure = err;
}

void event_batch::append(const event_batch& from, size_t k) {
  const entry& src = from.entries[k];
  entry& e = entries.emplace_back(src);
  e.tokens_begin = static_cast<uint32_t>(tokens.size());
  tokens.insert(tokens.end(), from.tokens.begin() + src.tokens_begin, from.tokens.begin() + src.tokens_end);
  e.tokens_end = static_cast<uint32_t>(tokens.size());
  e.text_begin = static_cast<uint32_t>(text.size());
  text.append(from.text, src.text_begin, src.text_end - src.text_begin);
  e.text_end = static_cast<uint32_t>(text.size());
  if (src.detail >= 0) {
    e.detail = static_cast<int32_t>(details.size());
    details.push_back(from.details[static_cast<size_t>(src.detail)]);
  }
}

void event_batch::reserve(size_t num_entries, size_t num_tokens, size_t text_bytes, size_t num_details) {
  entries.reserve(entries.size() + num_entries);
  tokens.reserve(tokens.size() + num_tokens);
  text.reserve(text.size() + text_bytes);
  if (num_details > 0) details.reserve(details.size() + num_details);
}

void event_batch::read(size_t k, generation_event& ev) const {
  const entry& e = entries[k];
  ev.index = e.index;
  ev.token_ids.assign(tokens.begin() + e.tokens_begin, tokens.begin() + e.tokens_end);
  ev.text.assign(text, e.text_begin, e.text_end - e.text_begin);
  ev.finish = e.finish;
  ev.usage = e.usage;
  ev.queue_time_s = e.queue_time_s;
  if (e.detail >= 0) {
    const detail& d = details[static_cast<size_t>(e.detail)];
    ev.logprobs = d.logprobs;
    ev.prompt_logprobs = d.prompt_logprobs;
  } else {
    ev.logprobs.clear();
    ev.prompt_logprobs.clear();
  }
}

}  // namespace troupe
