// The AVX2 matmul against float16 weights (the portable path stays cpu_matmul.cpp's generic kernel).
// Every y[i, j] is reduced exactly as cpu_matmul.cpp's float32 kernel reduces it over the weights
// widened to float32, so an F16 model gives the same bits for any m, tiling or thread count.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "runtime/cpu_matmul.h"
#include "runtime/cpu_matmul_blocks.h"

namespace troupe {
namespace {

// Design note: an element is 8 float lanes accumulated over k in increasing order (one FMA per lane
// per 8 elements), the cpu_matmul.cpp lane tree, then the k % 8 tail in order; F16C widens each
// weight exactly. Small m (decode) runs tiles of up to 4 rows x 3 (or 1 x 6) weight rows that share
// each 8-wide load of x, and fetches the next tile's weight rows at the pace it consumes its own:
// a tile's rows are a few KiB of one contiguous run, too short for the hardware prefetchers, and
// decode streams every weight from memory once per step. Larger m (prefill, batched decode): a task
// widens its block of weight rows once into a float32 panel that stays in L2 and runs it past up to
// 256 activation rows (8 x 3 register tiles with AVX-512VL's registers, else the float32 kernel's
// 4 x 3), instead of widening every weight once per 4 rows.

constexpr int tile_rows = 4;
constexpr int tile_cols = 3;
constexpr int wide_cols = 6;
constexpr int64_t small_m = 4;

__attribute__((target("avx2,fma,f16c"), always_inline)) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // lanes i + (i+4)
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                          // (0+2), (1+3)
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));                                      // 0 + 1
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// One 8-wide step of an R x C tile at column kk.
template <int R, int C>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void step8(const float* x, int64_t k,
                                                                           const uint16_t* w, int64_t kk,
                                                                           __m256 (&acc)[R][C]) {
  __m256 wv[C];
  for (int c = 0; c < C; ++c) wv[c] = load_f16x8(w + c * k + kk);
  for (int r = 0; r < R; ++r) {
    const __m256 xv = _mm256_loadu_ps(x + r * k + kk);
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
  }
}

// y[r, c] for an R x C tile: x rows [R, k] (stride k), w rows [C, k] (stride k, contiguous), y
// stride ldy. The C rows that follow w (the next tile) are prefetched, one cache line per row's
// worth of progress: 32 elements of each of C rows = C lines. Into L2 only (T1): a weight is read
// once per step, and fetching into L1 as well measured ~20% slower at batch-1 decode (1 and 2
// threads), the extra L1 fills competing with the tile's own loads.
template <int R, int C>
__attribute__((target("avx2,fma,f16c"))) void f16_tile(const float* x, int64_t k, const uint16_t* w, float* y,
                                                       int64_t ldy) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const char* next = reinterpret_cast<const char*>(w + C * k);
  int64_t kk = 0;
  for (; kk + 32 <= k; kk += 32) {
    const char* p = next + kk * 2 * C;
    for (int c = 0; c < C; ++c) _mm_prefetch(p + 64 * c, _MM_HINT_T1);
    step8<R, C>(x, k, w, kk, acc);
    step8<R, C>(x, k, w, kk + 8, acc);
    step8<R, C>(x, k, w, kk + 16, acc);
    step8<R, C>(x, k, w, kk + 24, acc);
  }
  for (; kk + 8 <= k; kk += 8) step8<R, C>(x, k, w, kk, acc);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float s = hsum8(acc[r][c]);
      for (int64_t t = kk; t < k; ++t) s = std::fma(x[r * k + t], f16_bits_to_f32(w[c * k + t]), s);
      y[r * ldy + c] = s;
    }
}

using tile_fn = void (*)(const float*, int64_t, const uint16_t*, float*, int64_t);

template <int R>
constexpr tile_fn tiles_of_row[tile_cols] = {f16_tile<R, 1>, f16_tile<R, 2>, f16_tile<R, 3>};
constexpr const tile_fn* tiles[tile_rows] = {tiles_of_row<1>, tiles_of_row<2>, tiles_of_row<3>, tiles_of_row<4>};

// Prefill's register tile where AVX-512VL gives 32 vector registers: 8 activation rows x 3 panel
// rows (24 accumulators) load 11 vectors per 24 FMAs where the 4 x 3 tile loads 7 per 12. Still
// 256-bit FMAs, one per 8 elements per (row, column): the float32 kernel's reduction, bit for bit.
constexpr int big_rows = 8;
constexpr int big_cols = 3;

template <int R, int C>
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) void f32_big_tile(const float* x, int64_t k,
                                                                            const float* w, float* y, int64_t ldy) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    __m256 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm256_loadu_ps(w + c * k + kk);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * k + kk);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float s = hsum8(acc[r][c]);
      for (int64_t t = kk; t < k; ++t) s = std::fma(x[r * k + t], w[c * k + t], s);
      y[r * ldy + c] = s;
    }
}

bool cpu_has_avx512vl() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  return yes;
}

// y[m, n] (stride ldy) = x[m, k] · panel[n, k]ᵀ: whole 8 x 3 tiles here, the edges by the float32
// kernels (the same per-element reduction either way).
void panel_rows(const float* x, int64_t m, int64_t k, const float* panel, int64_t n, float* y, int64_t ldy) {
  if (!cpu_has_avx512vl()) return matmul_f32_rows(x, m, k, panel, n, y, ldy);
  const int64_t m_full = m / big_rows * big_rows, n_full = n / big_cols * big_cols;
  for (int64_t i = 0; i < m_full; i += big_rows)
    for (int64_t j = 0; j < n_full; j += big_cols)
      f32_big_tile<big_rows, big_cols>(x + i * k, k, panel + j * k, y + i * ldy + j, ldy);
  if (n_full < n) matmul_f32_rows(x, m_full, k, panel + n_full * k, n - n_full, y + n_full, ldy);
  if (m_full < m) matmul_f32_rows(x + m_full * k, m - m_full, k, panel, n, y + m_full * ldy, ldy);
}

// Rows [n0, n1) of w widened to float32 into panel ([n1 - n0, k]).
__attribute__((target("avx2,fma,f16c"))) void widen_rows(const uint16_t* w, int64_t k, int64_t n0, int64_t n1,
                                                         float* panel) {
  const uint16_t* src = w + n0 * k;
  const int64_t count = (n1 - n0) * k;
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(panel + i, load_f16x8(src + i));
  for (; i < count; ++i) panel[i] = f16_bits_to_f32(src[i]);
}

}  // namespace

void matmul_f16_avx2(const float* x, int64_t m, const weight_matrix& w, const float* bias, float* y,
                     cpu_thread_pool& pool) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || n <= 0) return;
  const uint16_t* wh = w.half_data();
  // Tasks are [row block x column block] as in cpu_matmul.cpp; a column block's float32 panel
  // (≤ ~256 KiB) stays in L2 while the activation rows stream past it. The split never changes an
  // element's reduction order, only which thread computes it.
  const int64_t nb = column_block_width(n, k, pool.num_threads(), 4, wide_cols);
  // A panel serves up to 256 activation rows: widening it and streaming its float16 rows from
  // memory are paid once per block of rows (measured ~15% faster than 64 at prefill 256).
  const int64_t mb = 256;
  const int64_t num_nblocks = (n + nb - 1) / nb, num_mblocks = (m + mb - 1) / mb;
  const std::function<void(int64_t)> body = [&](int64_t task) {
    const int64_t n0 = (task % num_nblocks) * nb, n1 = std::min(n, n0 + nb);
    const int64_t m0 = (task / num_nblocks) * mb, m1 = std::min(m, m0 + mb);
    if (m1 - m0 > small_m) {
      thread_local std::vector<float> panel;
      panel.resize(static_cast<size_t>((n1 - n0) * k));
      widen_rows(wh, k, n0, n1, panel.data());
      panel_rows(x + m0 * k, m1 - m0, k, panel.data(), n1 - n0, y + m0 * n + n0, n);
    } else {
      for (int64_t i = m0; i < m1; i += tile_rows) {
        const int r = static_cast<int>(std::min<int64_t>(tile_rows, m1 - i));
        int64_t j = n0;
        if (r == 1)
          for (; j + wide_cols <= n1; j += wide_cols) f16_tile<1, wide_cols>(x + i * k, k, wh + j * k, y + i * n + j, n);
        for (; j < n1; j += tile_cols) {
          const int c = static_cast<int>(std::min<int64_t>(tile_cols, n1 - j));
          tiles[r - 1][c - 1](x + i * k, k, wh + j * k, y + i * n + j, n);
        }
      }
    }
    if (bias)
      for (int64_t i = m0; i < m1; ++i)
        for (int64_t j = n0; j < n1; ++j) y[i * n + j] += bias[j];
  };
  // Decode streams the weights once: each thread takes one contiguous run of column blocks.
  if (m <= small_m) pool.parallel_for_contiguous(num_nblocks, body);
  else pool.parallel_for(num_nblocks * num_mblocks, body);
}

}  // namespace troupe
