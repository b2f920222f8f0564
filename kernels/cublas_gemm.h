// The GEMM of the CUDA executor: Y[M, N] = X[M, K] · W[N, K]^T with HF weight layout ([out, in],
// row-major), bf16/fp16 inputs, float32 accumulation, output in the activation dtype or float32.
// One handle and one workspace (carved from the reserve) per executor; failures are statuses.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "config/error.h"
#include "kernels/kernel_types.h"

struct cublasContext;

namespace troupe {

struct gemm_args {
  void* y = nullptr;        // [m, n] row-major, leading dimension ldy (default n)
  const void* x = nullptr;  // [m, k] row-major, leading dimension ldx (default k)
  const void* w = nullptr;  // [n, k] row-major
  int64_t m = 0, n = 0, k = 0;
  int64_t ldx = 0, ldy = 0;  // 0: dense
  bool y_float32 = false;    // write float32 (logits) instead of the activation dtype
  float alpha = 1.f, beta = 0.f;  // y = alpha * x w^T + beta * y
  kernel_dtype dtype = kernel_dtype::bf16;
  bool programmatic_launch = true;  // skinny kernel: Hopper programmatic dependent launch (PDL)
};

class cublas_gemm {
 public:
  cublas_gemm() = default;
  ~cublas_gemm();
  cublas_gemm(const cublas_gemm&) = delete;
  cublas_gemm& operator=(const cublas_gemm&) = delete;

  // Creates the handle bound to `stream` and hands it `workspace` (device memory the caller owns;
  // cuBLAS recommends 32 MiB on Hopper). Call once, at start-up.
  status init(cudaStream_t stream, void* workspace, uint64_t workspace_bytes);
  status run(const gemm_args& a) const;
  bool initialized() const { return handle_ != nullptr; }

 private:
  cublasContext* handle_ = nullptr;
};

}  // namespace troupe
