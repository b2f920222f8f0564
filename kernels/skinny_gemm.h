// Skinny GEMM for decode steps: Y[M, N] = X[M, K] · W[N, K]^T for M <= 8 rows (gemm_args, HF
// [out, in] weights), a weight-streaming kernel: every weight byte is read once with 16-byte loads,
// float32 accumulation. At these shapes the step is a pass over the weights, and this reaches more
// of the HBM bandwidth than cuBLAS's choice did (bench/cuda_decode.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cublas_gemm.h"

namespace troupe {

constexpr int64_t kSkinnyGemmMaxRows = 8;

// True when the kernel handles `a`: 1 <= m <= 8, k a multiple of 8, x/w/y 16-byte aligned with
// leading dimensions that keep rows aligned, alpha 1 and beta 0.
bool skinny_gemm_supported(const gemm_args& a);

cudaError_t launch_skinny_gemm(const gemm_args& a, cudaStream_t stream);

}  // namespace troupe
