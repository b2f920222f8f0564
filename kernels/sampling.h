// Sampling on the GPU, one block per row: the math of runtime/sampling_math.h (logit_bias, the
// min_tokens mask, penalties as per-row token edits; logprobs; greedy or temperature -> min_p ->
// top_k -> top_p -> a draw with the sequence's own uniform), the CPU sampler's semantics.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "runtime/sampling_math.h"

namespace troupe {

struct sample_rows_args {
  float* logits = nullptr;                    // [rows, vocab] scratch: edits applied in place
  const int32_t* row_of = nullptr;            // device [num_rows]: block j samples logits row row_of[j]; null: j
  const smath::row_params* params = nullptr;  // device [num_rows]; skip rows are left alone
  smath::row_edit* edits = nullptr;           // device, indexed by the params' edit ranges
  smath::row_result* out = nullptr;           // device [num_rows]
  int32_t num_rows = 0;
  int64_t vocab = 0;
};

// Launches one block per row on `stream`; invalid sizes give cudaErrorInvalidValue, nothing aborts.
cudaError_t launch_sample_rows(const sample_rows_args& a, cudaStream_t stream);

}  // namespace troupe
