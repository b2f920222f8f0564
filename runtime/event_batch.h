// One step's events for many requests in flat arrays: what the scheduling core emits and what one
// message to a sink carries. Per event an entry of scalars with ranges into one token array and one
// text buffer; the rare parts (logprobs, prompt logprobs, a failure) in a side list. Cleared, not
// freed, between steps, so steady decode appends without allocating per sequence.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.h"
#include "runtime/generation.h"

namespace troupe {

struct event_batch {
  struct entry {
    uint64_t request = 0;   // the scheduler's handle
    int32_t index = 0;      // which choice
    finish_reason finish = finish_reason::none;
    bool failed = false;    // the request ends with details[detail].failure (no event)
    uint32_t tokens_begin = 0, tokens_end = 0;  // [tokens)
    uint32_t text_begin = 0, text_end = 0;      // [text)
    int32_t detail = -1;    // index into details, -1: none
    double queue_time_s = 0.0;
    usage_info usage;       // on a choice's final event
  };
  struct detail {
    std::vector<token_logprobs> logprobs;
    std::vector<token_logprobs> prompt_logprobs;
    error failure;
  };

  std::vector<entry> entries;
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<detail> details;

  size_t size() const { return entries.size(); }
  bool empty() const { return entries.empty(); }
  void clear();  // keeps every buffer's capacity

  // Appends an event (request_id left to the receiver, which knows the handle's id).
  void add_event(uint64_t request, int32_t index, std::span<const int32_t> token_ids, std::string_view piece,
                 finish_reason fin, double queue_time_s, const usage_info& usage,
                 std::vector<token_logprobs>&& lp, const std::vector<token_logprobs>* prompt_lp);
  void add_failure(uint64_t request, const error& err);
  // Appends entry k of `from` with its tokens, text and detail.
  void append(const event_batch& from, size_t k);
  // Room for `n` more entries of `from`'s kind: sized from counts gathered by the caller.
  void reserve(size_t num_entries, size_t num_tokens, size_t text_bytes, size_t num_details);

  // Entry k as an event, written into `ev`'s buffers (reused: no allocation once they are large
  // enough); ev.request_id is left as it was. Entry k must not be a failure.
  void read(size_t k, generation_event& ev) const;
  const error& failure(size_t k) const { return details[static_cast<size_t>(entries[k].detail)].failure; }
};

}  // namespace troupe
