// CPU matmul kernels for float32 and 16-bit weights (block formats: cpu_matmul_blocks.cpp; the AVX2
// float16 path: cpu_matmul_f16.cpp). Hand-blocked rather than BLAS: a sequence's logits must not depend on what
// else shares the step, so the per-element summation order must not depend on M; hand blocking
// guarantees that by construction (and measured faster than OpenBLAS at decode sizes, see
// bench/cpu_forward.cpp), and lets bf16/f16 weights be widened in registers.
#include "runtime/cpu_matmul.h"
#include "runtime/cpu_matmul_blocks.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>

namespace troupe {
namespace {

// Design note (matmul_nt): every output element y[i, j] is one dot product of x row i with w row j,
// computed as 8 lanes accumulated over k in increasing order (one FMA per lane per step), reduced
// lanes 0..7 by a fixed tree, then the k % 8 tail added in order. Register tiles of up to 4 rows x 3
// columns only share loads between such dot products; they never split one. Threads split the
// output into [row block x column block] tasks, so the per-element order is the same for any m,
// tiling or thread count.
// 16-bit weights are widened exactly to float32 before the FMA, so a bf16 checkpoint stored as bf16
// gives the same bits as the same checkpoint widened to float32. The AVX2+FMA(+F16C) path is chosen
// once per process from the CPU, so one machine always uses one path.

constexpr int tile_rows = 4;
constexpr int tile_cols = 3;
constexpr int wide_cols = 6;

struct w_f32 {
  using type = float;
  __attribute__((target("avx2,fma,f16c"))) static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static float load1(const float* p) { return *p; }
};
struct w_bf16 {
  using type = uint16_t;
  __attribute__((target("avx2,fma,f16c"))) static __m256 load8(const uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float load1(const uint16_t* p) { return bf16_bits_to_f32(*p); }
};
struct w_f16 {
  using type = uint16_t;
  __attribute__((target("avx2,fma,f16c"))) static __m256 load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float load1(const uint16_t* p) { return f16_bits_to_f32(*p); }
};

__attribute__((target("avx2,fma,f16c"))) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // lanes i + (i+4)
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                          // (0+2), (1+3)
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));                                      // 0 + 1
  return _mm_cvtss_f32(s);
}

// y[r, c] for an R x C tile: x rows [R, k] (stride k), w rows [C, k] (stride k), y stride ldy.
template <int R, int C, class W>
__attribute__((target("avx2,fma,f16c"))) void micro_avx2(const float* x, int64_t k, const typename W::type* w,
                                                         float* y, int64_t ldy) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    __m256 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = W::load8(w + c * k + kk);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * k + kk);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float s = hsum8(acc[r][c]);
      for (int64_t t = kk; t < k; ++t) s = std::fma(x[r * k + t], W::load1(w + c * k + t), s);
      y[r * ldy + c] = s;
    }
}

// Portable path with the same structure: 8 lane accumulators, the same lane tree, then the tail.
template <int R, int C, class W>
void micro_generic(const float* x, int64_t k, const typename W::type* w, float* y, int64_t ldy) {
  float acc[R][C][8] = {};
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c)
        for (int l = 0; l < 8; ++l) acc[r][c][l] += x[r * k + kk + l] * W::load1(w + c * k + kk + l);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const float* a = acc[r][c];
      float s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
      for (int64_t t = kk; t < k; ++t) s += x[r * k + t] * W::load1(w + c * k + t);
      y[r * ldy + c] = s;
    }
}

std::atomic<bool> force_scalar{false};

bool cpu_has_avx2() {
  static const bool yes =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return yes;
}

template <class W>
struct micro_set {
  using fn = void (*)(const float*, int64_t, const typename W::type*, float*, int64_t);
  fn f[tile_rows][tile_cols];  // f[r - 1][c - 1]: the kernel for an r x c tile
  fn row_wide;                 // 1 x wide_cols: a lone row (decode) keeps more weight rows in flight

  template <int R>
  void fill_row(bool avx) {
    f[R - 1][0] = avx ? micro_avx2<R, 1, W> : micro_generic<R, 1, W>;
    f[R - 1][1] = avx ? micro_avx2<R, 2, W> : micro_generic<R, 2, W>;
    f[R - 1][2] = avx ? micro_avx2<R, 3, W> : micro_generic<R, 3, W>;
  }
  static micro_set make(bool avx) {
    micro_set m{};
    m.fill_row<1>(avx);
    m.fill_row<2>(avx);
    m.fill_row<3>(avx);
    m.fill_row<4>(avx);
    m.row_wide = avx ? micro_avx2<1, wide_cols, W> : micro_generic<1, wide_cols, W>;
    return m;
  }
  static const micro_set& get() {
    static const micro_set avx = make(cpu_has_avx2()), generic = make(false);
    return cpu_matmul_uses_avx2() ? avx : generic;
  }
};

// Rows [i0, i1) x columns [j0, j1) of y (stride ldy) from x rows (stride k) and w rows (stride k).
template <class W>
void tile_rows_cols(const micro_set<W>& ms, const float* x, int64_t k, const typename W::type* w, int64_t i0,
                    int64_t i1, int64_t j0, int64_t j1, float* y, int64_t ldy) {
  for (int64_t i = i0; i < i1; i += tile_rows) {
    const int r = static_cast<int>(std::min<int64_t>(tile_rows, i1 - i));
    int64_t j = j0;
    if (r == 1)
      for (; j + wide_cols <= j1; j += wide_cols) ms.row_wide(x + i * k, k, w + j * k, y + i * ldy + j, ldy);
    for (; j < j1; j += tile_cols) {
      const int c = static_cast<int>(std::min<int64_t>(tile_cols, j1 - j));
      ms.f[r - 1][c - 1](x + i * k, k, w + j * k, y + i * ldy + j, ldy);
    }
  }
}

template <class W>
void matmul_impl(const float* x, int64_t m, int64_t k, const typename W::type* w, int64_t n, const float* bias,
                 float* y, cpu_thread_pool& pool) {
  if (m <= 0 || n <= 0) return;
  const micro_set<W>& ms = micro_set<W>::get();
  // Tasks are [row block x column block] tiles: a column block of w (≤ ~256 KiB) stays in L2
  // while the row tiles of x stream past it; enough column blocks to balance the threads at m = 1.
  const int64_t nb = column_block_width(n, k, pool.num_threads(), sizeof(typename W::type), tile_cols);
  const int64_t mb = 64;
  const int64_t num_nblocks = (n + nb - 1) / nb, num_mblocks = (m + mb - 1) / mb;
  pool.parallel_for(num_nblocks * num_mblocks, [&](int64_t task) {
    const int64_t n0 = (task % num_nblocks) * nb, n1 = std::min(n, n0 + nb);
    const int64_t m0 = (task / num_nblocks) * mb, m1 = std::min(m, m0 + mb);
    tile_rows_cols(ms, x, k, w, m0, m1, n0, n1, y, n);
    if (bias)
      for (int64_t i = m0; i < m1; ++i)
        for (int64_t j = n0; j < n1; ++j) y[i * n + j] += bias[j];
  });
}

}  // namespace

bool cpu_matmul_uses_avx2() { return cpu_has_avx2() && !force_scalar.load(std::memory_order_relaxed); }
void set_cpu_matmul_scalar(bool scalar) { force_scalar.store(scalar, std::memory_order_relaxed); }

void matmul_f32_rows(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y, int64_t ldy) {
  tile_rows_cols(micro_set<w_f32>::get(), x, k, w, 0, m, 0, n, y, ldy);
}

void matmul_nt(const float* x, int64_t m, const weight_matrix& w, const float* bias, float* y, cpu_thread_pool& pool) {
  switch (w.dtype) {
    case weight_dtype::f32: matmul_impl<w_f32>(x, m, w.cols, w.f32_data(), w.rows, bias, y, pool); break;
    case weight_dtype::bf16: matmul_impl<w_bf16>(x, m, w.cols, w.half_data(), w.rows, bias, y, pool); break;
    case weight_dtype::f16:
      if (cpu_matmul_uses_avx2()) matmul_f16_avx2(x, m, w, bias, y, pool);
      else matmul_impl<w_f16>(x, m, w.cols, w.half_data(), w.rows, bias, y, pool);
      break;
    default: matmul_blocks(x, m, w, bias, y, pool); break;
  }
}

void matmul_nt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* bias, float* y,
               cpu_thread_pool& pool) {
  matmul_impl<w_f32>(x, m, k, w, n, bias, y, pool);
}

float dot_f32(const float* a, const float* b, int64_t n) {
  float y;
  micro_set<w_f32>::get().f[0][0](a, n, b, &y, 1);
  return y;
}

float dot_f16(const float* a, const uint16_t* b, int64_t n) {
  float y;
  micro_set<w_f16>::get().f[0][0](a, n, b, &y, 1);
  return y;
}

}  // namespace troupe
