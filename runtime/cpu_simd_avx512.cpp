// AVX-512F versions of SiLU-and-mul and the attention softmax numerators (cpu_simd.h), bit-identical
// to the AVX2 ones: the same per-element arithmetic (exp16 = exp8 per lane, a correctly rounded
// division) and the same 8-lane summation order; only the instruction count per element halves.
#include <algorithm>
#include <atomic>
#include <limits>

// GCC 12's avx512fintrin.h seeds masked builtins with _mm512_undefined_ps(), which -Wall reports as
// "(may be) used uninitialized" once inlined (GCC bug 105593): not ours to fix.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "runtime/cpu_kernels.h"
#include "runtime/cpu_simd.h"
#include "runtime/cpu_vec_math.h"

namespace troupe::simd_avx512 {
namespace {

// silu(g) · u = g / (1 + e^{-g}) · u, as simd_avx2's silu_mul_op per lane.
__attribute__((target("avx512f,avx2,fma"), always_inline)) inline __m512 silu16(__m512 g, __m512 u) {
  const __m512i sign = _mm512_set1_epi32(static_cast<int32_t>(0x80000000u));
  const __m512 e = vec::exp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(g), sign)));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

}  // namespace

namespace {
std::atomic<bool> disabled{false};
}  // namespace

bool usable() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has && cpu_matmul_uses_avx2() && !disabled.load(std::memory_order_relaxed);
}

void set_disabled(bool off) { disabled.store(off, std::memory_order_relaxed); }

__attribute__((target("avx512f,avx2,fma"))) void silu_mul(const float* gate_up, int64_t rows, int64_t inter,
                                                           float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * inter;
    const float* u = g + inter;
    float* o = out + r * inter;
    int64_t i = 0;
    for (; i + 16 <= inter; i += 16) _mm512_storeu_ps(o + i, silu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
    if (i < inter) {  // the tail padded to 16: every element through the same code
      alignas(64) float bg[16] = {}, bu[16] = {};
      std::copy(g + i, g + inter, bg);
      std::copy(u + i, u + inter, bu);
      _mm512_store_ps(bg, silu16(_mm512_load_ps(bg), _mm512_load_ps(bu)));
      std::copy(bg, bg + (inter - i), o + i);
    }
  }
}

__attribute__((target("avx512f,avx2,fma"))) float softmax_numerators(float* s, int64_t n) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  __m512 mv = _mm512_set1_ps(neg_inf);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(s + i));
  float mx = _mm512_reduce_max_ps(mv);  // max is exact in any order
  for (int64_t j = i; j < n; ++j) mx = std::max(mx, s[j]);
  const __m512 m16 = _mm512_set1_ps(mx);
  const __m256 m8 = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();  // the AVX2 kernel's 8 lane sums, fed chunk by chunk in order
  for (i = 0; i + 16 <= n; i += 16) {
    const __m512 e = vec::exp16(_mm512_sub_ps(_mm512_loadu_ps(s + i), m16));
    _mm512_storeu_ps(s + i, e);
    acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
    acc = _mm256_add_ps(acc, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)));
  }
  if (i + 8 <= n) {
    const __m256 e = vec::exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), m8));
    _mm256_storeu_ps(s + i, e);
    acc = _mm256_add_ps(acc, e);
    i += 8;
  }
  if (i < n) {  // padded with -inf: exp gives 0, which leaves the lane sums unchanged
    alignas(32) float buf[8];
    std::fill(buf, buf + 8, neg_inf);
    std::copy(s + i, s + n, buf);
    const __m256 e = vec::exp8(_mm256_sub_ps(_mm256_load_ps(buf), m8));
    _mm256_store_ps(buf, e);
    std::copy(buf, buf + (n - i), s + i);
    acc = _mm256_add_ps(acc, e);
  }
  return vec::hsum8(acc);
}

}  // namespace troupe::simd_avx512
