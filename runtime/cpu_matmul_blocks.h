// Internal to the CPU matmul: the kernels for weights held in GGML block formats (Q4_0 ... Q6_K) and
// in float16, and what they share with the float32 kernels in cpu_matmul.cpp.
#pragma once

#include <cstdint>

#include "runtime/cpu_thread_pool.h"
#include "runtime/weight_matrix.h"

namespace troupe {

// matmul_nt for a block-format w: every y[i, j] equals the float32 kernel's result over w's rows
// dequantized exactly (the same lanes, the same order), bit for bit.
void matmul_blocks(const float* x, int64_t m, const weight_matrix& w, const float* bias, float* y,
                   cpu_thread_pool& pool);

// matmul_nt for a float16 w on the AVX2+FMA+F16C path (cpu_matmul_f16.cpp): the bits of the float32
// kernel over w widened to float32.
void matmul_f16_avx2(const float* x, int64_t m, const weight_matrix& w, const float* bias, float* y,
                     cpu_thread_pool& pool);

// y[m, n] (stride ldy) = x[m, k] · w[n, k]ᵀ with the float32 micro-kernels, on the calling thread.
void matmul_f32_rows(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, int64_t ldy);

}  // namespace troupe
