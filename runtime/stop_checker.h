// Per-sequence stop logic. stop_checker streams detokenized text and decides what may be emitted now:
// text that could begin a stop string is held back until disambiguated, a matched stop string and
// everything after it are never emitted. check_token_finish decides a finish by the sampled token
// (EOS, stop_token_ids, max_tokens, session_len).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/sampling_params.h"

namespace troupe {

struct stop_output {
  std::string text;         // safe to emit now (complete UTF-8 when the input is)
  bool stopped = false;     // a stop string matched: `text` is the last of this sequence
  int32_t stop_index = -1;  // which stop string matched (index into the list given)
};

// Design note: a stop string matches when it first appears in full in the text, i.e. at the
// earliest END position (ties: the earliest start, which cuts more). This is what a character-by-
// character streamer would see, so the result never depends on how the text was split into pieces.
// Held back: the longest suffix of the unemitted text that is a proper prefix of some stop string,
// plus an incomplete UTF-8 sequence at the very end (pieces from byte-level tokens may split one).
//
// Mutation contract: feed() and flush() are the only mutating calls; after a stop or a flush the
// checker emits nothing more.
class stop_checker {
 public:
  explicit stop_checker(std::vector<std::string> stop_strings);

  // Feeds the next piece of detokenized text. With `check_stops` false (fewer than min_tokens
  // generated, as vLLM) the piece is emitted without looking for stop strings; matching starts with
  // the first piece fed with check_stops true.
  stop_output feed(std::string_view piece, bool check_stops = true);
  // The sequence ended for another reason: returns everything held back (a dangling incomplete UTF-8
  // sequence becomes U+FFFD).
  std::string flush();

  bool stopped() const { return done_ && stop_index_ >= 0; }
  size_t num_held() const { return pending_.size(); }

 private:
  size_t held_suffix_len() const;

  std::vector<std::string> stops_;
  size_t max_stop_len_ = 0;
  std::string pending_;  // fed but not emitted
  bool done_ = false;
  int32_t stop_index_ = -1;
};

// Length in bytes of an incomplete UTF-8 sequence at the end of `s` (0 if it ends on a boundary).
size_t incomplete_utf8_tail(std::string_view s);

enum class token_finish : uint8_t {
  none = 0,
  eos = 1,          // finish_reason::stop
  stop_token = 2,   // finish_reason::stop (one of params.stop_token_ids)
  max_tokens = 3,   // finish_reason::length
  session_len = 4,  // finish_reason::length (prompt + generated reached the context limit)
};

bool is_length_finish(token_finish f);  // max_tokens or session_len

struct token_stop_rules {
  std::vector<int32_t> eos_ids;  // the model's end-of-sequence ids (generation config may list many)
  int64_t session_len = 0;       // context limit in tokens; 0 = none
};

// Decides whether the sequence ends with `token`, its `num_generated`-th generated token (counting
// it), `seq_len` tokens long in all (prompt + generated). EOS and stop_token_ids count only once
// num_generated >= min_tokens (EOS never with ignore_eos); a stop takes precedence over a length
// limit reached by the same token.
token_finish check_token_finish(const sampling_params& p, const token_stop_rules& rules, int32_t token,
                                int32_t num_generated, int64_t seq_len);

}  // namespace troupe
