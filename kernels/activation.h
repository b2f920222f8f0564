// SiLU-and-mul, the SwiGLU activation of Llama MLPs: out = silu(gate) * up over a fused gate|up
// projection output (or GeGLU, Gemma's gelu_tanh(gate) * up); and final-logit soft-capping.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/kernel_types.h"

namespace troupe {

struct silu_and_mul_args {
  void* out = nullptr;          // [num_tokens, inter]
  const void* gate_up = nullptr;  // [num_tokens, 2 * inter]: gate in [0, inter), up in [inter, 2 inter)
  int64_t num_tokens = 0;
  int64_t inter = 0;
  kernel_dtype dtype = kernel_dtype::bf16;
  bool gelu_tanh = false;  // GeGLU: gelu(tanh approximation) instead of silu
};

// out = dtype(silu(gate)) * up, rounding where an HF bf16 model rounds (after the activation).
cudaError_t launch_silu_and_mul(const silu_and_mul_args& a, cudaStream_t stream);

// x[i] = cap * tanh(x[i] / cap) over n float32 logits, in place (Gemma's final_logit_softcapping).
cudaError_t launch_softcap(float* x, int64_t n, float cap, cudaStream_t stream);

}  // namespace troupe
