// Prompt scoring where the logits are: reduces a logits row to the logprob of the token that
// follows and the top k (seq_step::prompt_logprobs), so backends return a few numbers per prompt
// position instead of a [vocab] row. Pure C++; the CPU backend calls it, the CUDA kernel mirrors it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/step_batch.h"

namespace troupe {

// log_softmax(row)[token] and the k most likely tokens [k], best first (ties: lower id).
token_logprobs score_row(std::span<const float> row, int32_t token, int32_t k);

// The positions a seq_step scores: for new token j (0-based in s.tokens), the token that follows
// it, or -1 when none is known (the chunk's last token without next_token).
int32_t scored_token_after(const seq_step& s, size_t j);

// Gathers the final hidden rows that need scoring: (index into the step's token rows, seq index,
// position of the scored token, the scored token), for every seq with prompt_logprobs >= 0.
struct scored_row {
  int64_t row = 0;      // token row in the step's [T, hidden] activations
  int32_t seq = 0;
  int32_t position = 0;  // absolute position of the scored token
  int32_t token = 0;
  int32_t k = 0;
};
std::vector<scored_row> rows_to_score(const step_batch& batch);

}  // namespace troupe
