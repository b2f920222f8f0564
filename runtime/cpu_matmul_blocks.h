// Internal to the CPU matmul: the kernels for weights held in GGML block formats (Q4_0 ... Q6_K) and
// in float16, and what they share with the float32 kernels in cpu_matmul.cpp.
#pragma once

#include <algorithm>
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

// The width of a task's column block, shared by every matmul: a block of w (bytes_per_weight per
// element, ≤ ~256 KiB) stays in L2 while the rows of x stream past it, with enough blocks to balance
// the threads at m = 1; a multiple of `multiple` (the kernel's tile), 12..96 wide. The split never
// changes an element's reduction order, only which thread computes it.
inline int64_t column_block_width(int64_t n, int64_t k, int64_t threads, int64_t bytes_per_weight, int64_t multiple) {
  const int64_t want_tasks = threads * 8;
  const int64_t l2_cols = std::max<int64_t>(3, (256 * 1024) / (k * bytes_per_weight));
  const int64_t nb = std::min((n + want_tasks - 1) / want_tasks * 4, l2_cols);
  return std::clamp<int64_t>((nb + multiple - 1) / multiple * multiple, 12, 96);
}

// y[m, n] (stride ldy) = x[m, k] · w[n, k]ᵀ with the float32 micro-kernels, on the calling thread.
void matmul_f32_rows(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, int64_t ldy);

}  // namespace troupe
