// AVX2+FMA non-matmul kernels (cpu_simd.h). Elementwise ops run every element, tails included,
// through the same 8-lane code (a tail is copied into a padded register-sized buffer), so a value's
// result never depends on the length of the array it is in: batch invariance for ops that run over
// [rows, n] at once (softcap over all logits).
#include "runtime/cpu_simd.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/cpu_vec_math.h"

namespace troupe::simd_avx2 {
namespace {

// Runs fn(in, out) over [0, n) eight floats at a time; a tail of n % 8 goes through a zero-padded
// buffer. in and out may alias.
template <class Fn>
__attribute__((target("avx2,fma"), always_inline)) inline void map8(const float* x, float* y, int64_t n, Fn&& fn) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, fn(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float buf[8] = {};
    std::copy(x + i, x + n, buf);
    _mm256_store_ps(buf, fn(_mm256_load_ps(buf)));
    std::copy(buf, buf + (n - i), y + i);
  }
}

// The same over two inputs (gate, up) into one output.
template <class Fn>
__attribute__((target("avx2,fma"), always_inline)) inline void map8x2(const float* a, const float* b, float* y,
                                                                      int64_t n, Fn&& fn) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, fn(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  if (i < n) {
    alignas(32) float ba[8] = {}, bb[8] = {};
    std::copy(a + i, a + n, ba);
    std::copy(b + i, b + n, bb);
    _mm256_store_ps(ba, fn(_mm256_load_ps(ba), _mm256_load_ps(bb)));
    std::copy(ba, ba + (n - i), y + i);
  }
}

// Σ x[i]² of one row in double: lanes l = i % 8 over whole chunks (x² is exact in double, so the
// sums round the same as the scalar lanes), the tree ((0+4)+(2+6))+((1+5)+(3+7)), then the tail.
__attribute__((target("avx2"))) double sum_squares(const float* x, int64_t n) {
  __m256d a_lo = _mm256_setzero_pd(), a_hi = _mm256_setzero_pd();  // lanes 0..3 and 4..7
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    a_lo = _mm256_add_pd(a_lo, _mm256_mul_pd(lo, lo));
    a_hi = _mm256_add_pd(a_hi, _mm256_mul_pd(hi, hi));
  }
  const __m256d s = _mm256_add_pd(a_lo, a_hi);  // (0+4), (1+5), (2+6), (3+7)
  alignas(32) double l[4];
  _mm256_store_pd(l, s);
  double ss = (l[0] + l[2]) + (l[1] + l[3]);
  for (; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  return ss;
}

// y = weight · (x · inv), products rounded apart (no FMA in the target), as the scalar loop.
__attribute__((target("avx2"))) void scale_row(const float* x, const float* w, float inv, int64_t n, float* y) {
  const __m256 vi = _mm256_set1_ps(inv);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(x + i), vi)));
  for (; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

// The elementwise functions, as functors whose call operators carry the target (a lambda would not
// inherit its enclosing function's target and could not inline exp8).
struct exp_op {
  __attribute__((target("avx2,fma"), always_inline)) __m256 operator()(__m256 v) const { return vec::exp8(v); }
};
struct tanh_op {
  __attribute__((target("avx2,fma"), always_inline)) __m256 operator()(__m256 v) const { return vec::tanh8(v); }
};
// silu(g) · u = g / (1 + e^{-g}) · u
struct silu_mul_op {
  __attribute__((target("avx2,fma"), always_inline)) __m256 operator()(__m256 g, __m256 u) const {
    const __m256 e = vec::exp8(_mm256_xor_ps(g, _mm256_set1_ps(-0.0f)));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
  }
};
// PyTorch's gelu(approximate="tanh"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), times u.
struct gelu_tanh_mul_op {
  __attribute__((target("avx2,fma"), always_inline)) __m256 operator()(__m256 x, __m256 u) const {
    const __m256 beta = _mm256_set1_ps(static_cast<float>(M_SQRT2 * M_2_SQRTPI * 0.5));
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    const __m256 inner = _mm256_mul_ps(beta, _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
    const __m256 t = _mm256_add_ps(_mm256_set1_ps(1.0f), vec::tanh8(inner));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), t), u);
  }
};
struct softcap_op {
  float cap;
  __attribute__((target("avx2,fma"), always_inline)) __m256 operator()(__m256 v) const {
    const __m256 c = _mm256_set1_ps(cap);
    return _mm256_mul_ps(vec::tanh8(_mm256_div_ps(v, c)), c);
  }
};

}  // namespace

__attribute__((target("avx2,fma"))) void exp(const float* x, float* y, int64_t n) { map8(x, y, n, exp_op{}); }

__attribute__((target("avx2,fma"))) void tanh(const float* x, float* y, int64_t n) { map8(x, y, n, tanh_op{}); }

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const double ss = sum_squares(x + r * dim, dim);
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    scale_row(x + r * dim, weight, inv, dim, y + r * dim);
  }
}

// No FMA in the target: x1·c − x2·s rounds each product, as the scalar loop does.
__attribute__((target("avx2"))) void rope_apply(float* v, int64_t num_heads, int64_t head_dim, const float* cos,
                                                const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < num_heads; ++h) {
    float* x = v + h * head_dim;
    int64_t i = 0;
    for (; i + 8 <= half; i += 8) {
      const __m256 x1 = _mm256_loadu_ps(x + i), x2 = _mm256_loadu_ps(x + i + half);
      const __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
      _mm256_storeu_ps(x + i, _mm256_sub_ps(_mm256_mul_ps(x1, c), _mm256_mul_ps(x2, s)));
      _mm256_storeu_ps(x + i + half, _mm256_add_ps(_mm256_mul_ps(x2, c), _mm256_mul_ps(x1, s)));
    }
    for (; i < half; ++i) {
      const float x1 = x[i], x2 = x[i + half];
      x[i] = x1 * cos[i] - x2 * sin[i];
      x[i + half] = x2 * cos[i] + x1 * sin[i];
    }
  }
}

__attribute__((target("avx2,fma"))) void silu_mul(const float* gate_up, int64_t rows, int64_t inter, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * inter;
    map8x2(g, g + inter, out + r * inter, inter, silu_mul_op{});
  }
}

__attribute__((target("avx2,fma"))) void gelu_tanh_mul(const float* gate_up, int64_t rows, int64_t inter, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * inter;
    map8x2(g, g + inter, out + r * inter, inter, gelu_tanh_mul_op{});
  }
}

__attribute__((target("avx2,fma"))) void softcap(float* x, int64_t n, float cap) { map8(x, x, n, softcap_op{cap}); }

__attribute__((target("avx2,fma"))) float softmax_numerators(float* s, int64_t n) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  __m256 mv = _mm256_set1_ps(neg_inf);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mv);
  float mx = neg_inf;
  for (float l : lanes) mx = std::max(mx, l);
  for (int64_t j = i; j < n; ++j) mx = std::max(mx, s[j]);
  const __m256 m = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = vec::exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), m));
    _mm256_storeu_ps(s + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (i < n) {  // padded with -inf: exp gives 0, which leaves the lane sums unchanged
    alignas(32) float buf[8];
    std::fill(buf, buf + 8, neg_inf);
    std::copy(s + i, s + n, buf);
    const __m256 e = vec::exp8(_mm256_sub_ps(_mm256_load_ps(buf), m));
    _mm256_store_ps(buf, e);
    std::copy(buf, buf + (n - i), s + i);
    acc = _mm256_add_ps(acc, e);
  }
  return vec::hsum8(acc);
}

}  // namespace troupe::simd_avx2
