// Keeps a sequence's token logprobs in step with its returned text: a token's logprobs leave with
// the first event whose text reaches the token's text, and tokens whose text a stop string cut
// away (or that never had text: EOS, stop_token_ids) never leave. Pure C++; scheduler_core owns one
// per sequence.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "troupe/generation.h"

namespace troupe {

// Design note: the decoder turns tokens into a byte stream D (a token may add nothing yet, e.g.
// half a UTF-8 character); the stop checker returns a prefix of D. A token is "in the text" when
// the offset of D at which it was pushed lies before the end of the returned text: exactly the
// tokens whose text is (partly) returned. When a stop string ends mid-token, that token is kept
// (its text is partly returned), so "".join(tokens) starts with the text and may run past it.
//
// Mutation contract: add() records a token, release() hands out what the text now covers,
// finish() ends the sequence (everything left, or only what the text covers after a stop string).
class logprob_aligner {
 public:
  // `lp` was pushed into the decoder when `decoded_before` bytes had come out of it.
  void add(token_logprobs lp, int64_t decoded_before);
  // `returned` bytes of text have been emitted in all: the tokens that text now covers.
  std::vector<token_logprobs> release(int64_t returned);
  // The sequence ended. stopped_by_string: a stop string cut the text at `returned` bytes, so
  // tokens pushed at or after it are dropped; otherwise every pending token is released.
  std::vector<token_logprobs> finish(int64_t returned, bool stopped_by_string);

 private:
  struct pending {
    token_logprobs lp;
    int64_t offset = 0;
  };
  std::deque<pending> pending_;
};

}  // namespace troupe
