// Per-head RMSNorm of the q and k parts of a fused QKV activation, in place (Qwen3's q_norm and
// k_norm before rotary; Gemma 3's too with weight_offset 1 for its (1 + w) form).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/kernel_types.h"

namespace troupe {

struct head_rms_norm_args {
  void* qkv = nullptr;             // [num_tokens, (num_heads + 2 * num_kv_heads) * head_dim]: q | k | v
  const void* q_weight = nullptr;  // [head_dim], shared by the q heads
  const void* k_weight = nullptr;  // [head_dim], shared by the k heads
  int64_t num_tokens = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  float eps = 1e-6f;
  float weight_offset = 0.f;  // y = (w + offset) * norm(x): 0 (Llama-style), 1 (Gemma)
  kernel_dtype dtype = kernel_dtype::bf16;
};

// Each q head x and k head x of each token: x <- dtype(w * dtype(x / sqrt(mean(x^2) + eps))),
// float32 math, rounded as an HF model running in bf16 rounds (the normed value, then the product);
// with weight_offset != 0 (Gemma) x <- dtype(x̂ * (w + offset)), rounded once. v is untouched.
cudaError_t launch_head_rms_norm(const head_rms_norm_args& a, cudaStream_t stream);

}  // namespace troupe
