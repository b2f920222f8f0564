// Embedding lookup (token ids -> rows of the embedding table) and the row gather used before the
// LM head (hidden states of the tokens whose logits were asked for).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/kernel_types.h"

namespace troupe {

struct gather_rows_args {
  void* out = nullptr;          // [num_rows, width]
  const void* table = nullptr;  // [num_table_rows, width]
  const int32_t* ids = nullptr; // [num_rows] row ids; ids outside [0, num_table_rows) give zero rows
  int64_t num_rows = 0;
  int64_t num_table_rows = 0;
  int64_t width = 0;
  kernel_dtype dtype = kernel_dtype::bf16;
  float scale = 0.f;  // != 0: rows multiplied by dtype(scale) (Gemma's √hidden embedding scale)
};

// out[r, :] = table[ids[r], :] (times scale when set). Serves the embedding lookup (table = embed_tokens) and the
// selection of logit rows (table = hidden states).
cudaError_t launch_gather_rows(const gather_rows_args& a, cudaStream_t stream);

struct random_fill_args {
  void* out = nullptr;  // [num_elements]
  int64_t num_elements = 0;
  float scale = 0.02f;  // uniform in [-scale, scale) + offset
  float offset = 0.f;
  uint64_t seed = 0;
  kernel_dtype dtype = kernel_dtype::bf16;
};

// Deterministic pseudo-random fill (a hash of seed and index), for --load-format dummy.
cudaError_t launch_random_fill(const random_fill_args& a, cudaStream_t stream);

}  // namespace troupe
