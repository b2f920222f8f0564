// RMSNorm launchers (HF Llama semantics: y = w * (x / sqrt(mean(x^2) + eps)), float32 math; or
// Gemma's y = x̂ * (1 + w)), and the fused variant that first adds a branch output into the residual
// stream.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/kernel_types.h"

namespace troupe {

struct rms_norm_args {
  void* out = nullptr;           // [num_rows, hidden]; may alias `in`
  const void* in = nullptr;      // [num_rows, hidden]
  const void* weight = nullptr;  // [hidden]
  int64_t num_rows = 0;
  int64_t hidden = 0;
  float eps = 1e-5f;
  kernel_dtype dtype = kernel_dtype::bf16;
  bool gemma_form = false;  // y = dtype(x̂ * (1 + w)) in float32, w as the checkpoint stores it
};

cudaError_t launch_rms_norm(const rms_norm_args& a, cudaStream_t stream);

struct fused_add_rms_norm_args {
  void* out = nullptr;           // [num_rows, hidden] normed result; may alias `x`
  void* residual = nullptr;      // [num_rows, hidden] in: residual stream; out: residual + x
  const void* x = nullptr;       // [num_rows, hidden] branch output added into the residual
  const void* weight = nullptr;  // [hidden]
  int64_t num_rows = 0;
  int64_t hidden = 0;
  float eps = 1e-5f;
  kernel_dtype dtype = kernel_dtype::bf16;
  bool gemma_form = false;  // as in rms_norm_args
};

// residual = dtype(residual + x); out = rms_norm(residual) (the sum is rounded to the activation
// dtype first, as an HF model in bf16 computes it).
cudaError_t launch_fused_add_rms_norm(const fused_add_rms_norm_args& a, cudaStream_t stream);

}  // namespace troupe
