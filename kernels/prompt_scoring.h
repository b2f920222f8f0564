// Prompt scoring on the GPU: each float32 logits row reduced to the log-softmax at one target token
// and the top k (ids and logprobs, best first, ties to the lower id), so only [rows, 1 + 2k]
// numbers leave the device (runtime/prompt_logprobs.h is the CPU twin and the reference).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace troupe {

struct score_rows_args {
  const float* logits = nullptr;    // [num_rows, vocab]
  const int32_t* targets = nullptr;  // [num_rows] token scored in each row
  int32_t num_rows = 0;
  int64_t vocab = 0;
  int32_t k = 0;                    // top entries per row, 0..32
  float* target_logprob = nullptr;  // [num_rows]
  int32_t* top_ids = nullptr;       // [num_rows, k]
  float* top_logprobs = nullptr;    // [num_rows, k]
};

cudaError_t launch_score_rows(const score_rows_args& a, cudaStream_t stream);

}  // namespace troupe
