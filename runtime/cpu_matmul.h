// The CPU matmul y = x · Wᵀ against weights in float32, bfloat16 or float16, and the dot product the
// attention kernel shares with it. Each output element is reduced in one fixed order that does not
// depend on the number of rows, the tiling or the thread count (batch invariance).
#pragma once

#include <cstdint>

#include "runtime/cpu_thread_pool.h"
#include "runtime/weight_matrix.h"

namespace troupe {

// y[i, j] = Σ_k x[i, k] · w[j, k]  (+ bias[j] when bias != nullptr).
// x: [m, w.cols] row-major float32; w: [w.rows, w.cols]; y: [m, w.rows] row-major.
void matmul_nt(const float* x, int64_t m, const weight_matrix& w, const float* bias, float* y, cpu_thread_pool& pool);

// The same over a raw float32 w: [n, k].
void matmul_nt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* bias, float* y,
               cpu_thread_pool& pool);

// Whether the AVX2+FMA kernels run (the CPU has them and set_cpu_matmul_scalar(true) was not
// called). The scalar kernels reduce in the same lane order; tests switch to them to check them.
bool cpu_matmul_uses_avx2();
void set_cpu_matmul_scalar(bool scalar);

// The dot product matmul_nt computes for one element (float32 operands).
float dot_f32(const float* a, const float* b, int64_t n);
// The same with b in float16 bits (widened exactly), as matmul_nt over float16 weights computes it.
float dot_f16(const float* a, const uint16_t* b, int64_t n);

}  // namespace troupe
