// Rotary position embedding (HF rotate_half layout) applied in place to the q and k parts of a
// fused QKV activation, with the optional QKV bias (Qwen2) added in the same pass.
#pragma once

#include <cstdint>
#include <vector>

#include <cuda_runtime_api.h>

#include "kernels/kernel_types.h"
#include "kernels/kv_cache.h"
#include "runtime/model_config.h"

namespace troupe {

struct rotary_args {
  void* qkv = nullptr;             // [num_tokens, (num_heads + 2 * num_kv_heads) * head_dim]: q | k | v
  const void* bias = nullptr;      // [(num_heads + 2 * num_kv_heads) * head_dim] or null
  const int32_t* positions = nullptr;  // [num_tokens] absolute positions
  const float* inv_freq = nullptr; // [head_dim / 2] from rotary_inv_freq (scaling included)
  int64_t num_tokens = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;            // even
  kernel_dtype dtype = kernel_dtype::bf16;
  // Optional fused KV append: with `slots` set, the rotated K and the (biased) V of token t are
  // also written to slot slots[t] of layer `layer` in `cache` (slot < 0: not written), which
  // saves the separate launch_append_kv pass of a decode step.
  const int32_t* slots = nullptr;
  paged_kv_layout cache;
  int32_t layer = 0;
};

// For each q and k head: x[i] <- x[i] cos(p f_i) - x[i + d/2] sin(p f_i),
// x[i + d/2] <- x[i + d/2] cos(p f_i) + x[i] sin(p f_i), i < d/2; v only gets the bias. K and V
// go to the paged cache too when `slots` is set.
cudaError_t launch_rotary(const rotary_args& a, cudaStream_t stream);

// The inverse frequencies of HF's rope init: default (theta^(-2i/d)), "linear" (divided by factor)
// and "llama3" (wavelength-dependent scaling with smooth interpolation). Host-side, float32.
std::vector<float> rotary_inv_freq(const rope_config& rope, int64_t head_dim);

}  // namespace troupe
