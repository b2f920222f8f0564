// AVX2+FMA versions of the non-matmul kernels of cpu_kernels.h (RMSNorm, rotary, SiLU/GeGLU-and-mul,
// soft-capping, the softmax numerators of attention) and the vector exp/tanh they use. cpu_kernels.cpp
// dispatches to them when cpu_matmul_uses_avx2(); tests call them directly to compare with the
// scalar kernels. Call only on a CPU with AVX2, FMA and F16C. AVX-512 versions of the exp-heavy
// ones: cpu_simd_avx512.cpp.
#pragma once

#include <cstdint>

namespace troupe::simd_avx2 {

// y[i] = exp(x[i]) / tanh(x[i]), n floats, every element through the same 8-lane function (tails
// padded), so an element's bits never depend on where it sits in the array.
void exp(const float* x, float* y, int64_t n);
void tanh(const float* x, float* y, int64_t n);

// Bit-identical to the scalar rmsnorm and rope_apply (cpu_kernels.cpp): the same per-element
// arithmetic and, for the sum of squares, the same 8 double lanes and tree.
void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* y);
void rope_apply(float* v, int64_t num_heads, int64_t head_dim, const float* cos, const float* sin);

// As the scalar kernels but with exp8/tanh8 (cpu_vec_math.h) for std::exp/std::tanh.
void silu_mul(const float* gate_up, int64_t rows, int64_t inter, float* out);
void gelu_tanh_mul(const float* gate_up, int64_t rows, int64_t inter, float* out);
void softcap(float* x, int64_t n, float cap);

// s[j] = exp(s[j] − max(s)) for j in [0, n), n ≥ 1; returns Σ s[j] accumulated in 8 lanes (lane
// j % 8, the last partial chunk zero-padded) then cpu_matmul's lane tree: the order depends on n only.
float softmax_numerators(float* s, int64_t n);

}  // namespace troupe::simd_avx2

// AVX-512F versions of the two exp-heavy kernels, 16 floats per step, giving exactly the AVX2
// kernels' bits (exp16 is exp8 per lane; the softmax sum adds each 16-float chunk's two halves to the
// 8 lane sums in turn, the AVX2 order). ~1.4x the AVX2 exp throughput on this Zen 4 EPYC.
namespace troupe::simd_avx512 {

// The CPU has AVX-512F (checked once) and the AVX2 kernels are in use (cpu_matmul_uses_avx2()).
bool usable();
// Benchmarks switch the AVX-512 kernels off to time the AVX2 ones in the same process.
void set_disabled(bool off);

void silu_mul(const float* gate_up, int64_t rows, int64_t inter, float* out);
float softmax_numerators(float* s, int64_t n);

}  // namespace troupe::simd_avx512
