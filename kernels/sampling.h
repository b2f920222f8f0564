// Logits processing and sampling on the GPU, one CTA per row: repetition / presence / frequency
// penalties, then greedy argmax or temperature -> top-k -> top-p -> min-p -> a draw from a
// counter-based generator (Philox4x32-10, keyed by the request seed, counter = step).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/kernel_types.h"

namespace troupe {

// Per-row knobs (device array). Token history ranges index the `history` array of the launch.
struct sampling_row {
  float temperature = 1.f;          // <= 0: greedy (argmax, lowest id on ties)
  float top_p = 1.f;                // >= 1: off
  float min_p = 0.f;                // <= 0: off; keeps p >= min_p * p_max
  int32_t top_k = -1;               // <= 0 or >= vocab: off
  float repetition_penalty = 1.f;   // 1: off; over prompt and output tokens (vLLM semantics)
  float presence_penalty = 0.f;     // over output tokens
  float frequency_penalty = 0.f;    // over output tokens, times their count
  int32_t prompt_begin = 0, prompt_end = 0;  // history[prompt_begin, prompt_end): prompt tokens
  int32_t output_begin = 0, output_end = 0;  // history[output_begin, output_end): generated tokens
  uint64_t seed = 0;                // Philox key
  uint64_t step = 0;                // Philox counter: one draw per (seed, step)
};

struct apply_penalties_args {
  float* logits = nullptr;              // [num_rows, vocab], modified in place
  const sampling_row* rows = nullptr;   // device [num_rows]
  const int32_t* history = nullptr;     // device token ids referenced by the rows
  int32_t* counts = nullptr;            // workspace [num_rows, vocab]
  int32_t num_rows = 0;
  int64_t vocab = 0;
};

// Seen tokens (prompt or output): logit / rp if positive, logit * rp otherwise; output tokens:
// logit -= frequency * count + presence. Rows whose penalties are all off are left untouched.
cudaError_t launch_apply_penalties(const apply_penalties_args& a, cudaStream_t stream);

struct sample_args {
  float* logits = nullptr;             // [num_rows, vocab]; overwritten with unnormalized probs
  const sampling_row* rows = nullptr;  // device [num_rows]
  int32_t num_rows = 0;
  int64_t vocab = 0;
  int32_t* out_tokens = nullptr;       // device [num_rows]
};

// Design note: filters are thresholds on p = exp((logit - max) / T) (so p_max = 1): top-k and top-p
// thresholds come from a 4-pass radix select over the float bits (8-bit digits, counts or masses
// per bin), top-p measured over the top-k survivors; min-p is p >= min_p. Ties at a threshold are
// all kept. The draw walks the survivors in id order with a block-wide prefix sum.
cudaError_t launch_sample(const sample_args& a, cudaStream_t stream);

}  // namespace troupe
