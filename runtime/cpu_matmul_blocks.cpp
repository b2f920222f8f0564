// CPU matmul against weights held in GGML block formats, dequantized in registers. The exact path:
// float32 activations times exactly dequantized weights, reduced like the float32 kernel, so a
// quantized model gives the same bits as the same model widened to float32 at load.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "runtime/cpu_matmul.h"
#include "runtime/cpu_matmul_blocks.h"
#include "runtime/dequant.h"

namespace troupe {
namespace {

// Design note: y[i, j] is accumulated in 8 float lanes over k in increasing order (one FMA per lane
// per step) and reduced by the same lane tree as cpu_matmul.cpp's kernels; every block format's
// k is a whole number of 32-element blocks, so there is no tail. Each weight value is produced by
// the dequantizer's own arithmetic, and every format's scale x quant product is exact in float32
// (at most 24 significant bits), so whether the compiler fuses "q*d + m" cannot change a bit.
// Small m (decode): a tile of up to 4 rows x 3 (or 1 x 6) columns decodes one block of each column
// into registers (an L1 buffer for the K-quants) and runs it past the rows, prefetching the next
// tile's rows as it goes. Larger m (prefill): a task dequantizes its column
// block once into a float32 panel and runs the float32 kernels over up to 64 rows.

constexpr int tile_rows = 4;
constexpr int tile_cols = 3;
constexpr int wide_cols = 6;
constexpr int64_t small_m = 4;

using decode_fn = void (*)(const uint8_t* block, float* out);

// The 32 elements of 16 bytes of packed nibbles (GGML order: element j is byte j's low nibble, j + 16
// its high nibble), as int32: out[p] holds elements 8p .. 8p + 7. Each 8-byte half is widened
// straight from memory (vpmovzxbd), so the nibbles need one AND or one shift per vector.
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void nibbles_i32(const uint8_t* q, __m256i* out) {
  const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
  const __m256i hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8)));
  const __m256i mask = _mm256_set1_epi32(0x0F);
  out[0] = _mm256_and_si256(lo, mask);
  out[1] = _mm256_and_si256(hi, mask);
  out[2] = _mm256_srli_epi32(lo, 4);
  out[3] = _mm256_srli_epi32(hi, 4);
}

// Q5's fifth bits: bit j of qh (little-endian) is element j's bit 4.
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void add_high_bits(const uint8_t* qh_bytes,
                                                                                   __m256i* v) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  const __m256i all = _mm256_set1_epi32(static_cast<int>(qh));
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), one = _mm256_set1_epi32(1);
  for (int p = 0; p < 4; ++p) {
    const __m256i bits = _mm256_srlv_epi32(all, _mm256_add_epi32(lane, _mm256_set1_epi32(8 * p)));
    v[p] = _mm256_or_si256(v[p], _mm256_slli_epi32(_mm256_and_si256(bits, one), 4));
  }
}

// Broadcasts of a block's fp16 scale (d) and of its (d, m) pair.
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 half_scale(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h)));
}
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void half_scale_min(const uint8_t* p, __m256& d,
                                                                                    __m256& m) {
  uint32_t dm;
  std::memcpy(&dm, p, 4);
  const __m256 both = _mm256_cvtph_ps(_mm_set1_epi32(static_cast<int>(dm)));  // d, m, d, m, ...
  d = _mm256_permute_ps(both, 0x00);
  m = _mm256_permute_ps(both, 0x55);
}

// Register decoders of the 32-element formats: one block -> 4 vectors of 8 floats, each weight
// (q + offset) * d (+ m). The products are exact in float32, so an FMA for "* d + m" gives the
// dequantizer's bits.
struct q4_0_regs {
  static constexpr int64_t bytes = 18;
  __attribute__((target("avx2,fma,f16c"), always_inline)) static inline void decode(const uint8_t* b, __m256* out) {
    __m256i v[4];
    nibbles_i32(b + 2, v);
    const __m256 d = half_scale(b);
    const __m256i off = _mm256_set1_epi32(-8);
    for (int p = 0; p < 4; ++p) out[p] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(v[p], off)), d);
  }
};
struct q4_1_regs {
  static constexpr int64_t bytes = 20;
  __attribute__((target("avx2,fma,f16c"), always_inline)) static inline void decode(const uint8_t* b, __m256* out) {
    __m256i v[4];
    nibbles_i32(b + 4, v);
    __m256 d, m;
    half_scale_min(b, d, m);
    for (int p = 0; p < 4; ++p) out[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v[p]), d, m);
  }
};
struct q5_0_regs {
  static constexpr int64_t bytes = 22;
  __attribute__((target("avx2,fma,f16c"), always_inline)) static inline void decode(const uint8_t* b, __m256* out) {
    __m256i v[4];
    nibbles_i32(b + 6, v);
    add_high_bits(b + 2, v);
    const __m256 d = half_scale(b);
    const __m256i off = _mm256_set1_epi32(-16);
    for (int p = 0; p < 4; ++p) out[p] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(v[p], off)), d);
  }
};
struct q5_1_regs {
  static constexpr int64_t bytes = 24;
  __attribute__((target("avx2,fma,f16c"), always_inline)) static inline void decode(const uint8_t* b, __m256* out) {
    __m256i v[4];
    nibbles_i32(b + 8, v);
    add_high_bits(b + 4, v);
    __m256 d, m;
    half_scale_min(b, d, m);
    for (int p = 0; p < 4; ++p) out[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v[p]), d, m);
  }
};
struct q8_0_regs {
  static constexpr int64_t bytes = 34;
  __attribute__((target("avx2,fma,f16c"), always_inline)) static inline void decode(const uint8_t* b, __m256* out) {
    const __m256 d = half_scale(b);
    for (int p = 0; p < 4; ++p) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * p));
      out[p] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
    }
  }
};

// The same decoders storing to memory (prefill panels).
template <class D>
__attribute__((target("avx2,fma,f16c"))) void dec_store(const uint8_t* b, float* out) {
  __m256 v[4];
  D::decode(b, v);
  for (int p = 0; p < 4; ++p) _mm256_storeu_ps(out + 8 * p, v[p]);
}

// Formats without a vector decoder yet (the K-quants) use GGML's scalar dequantizer per block.
template <ggml_type T>
void dec_scalar(const uint8_t* b, float* out) {
  const ggml_type_traits* t = ggml_type_info(static_cast<uint32_t>(T));
  (void)dequantize_to_f32(static_cast<uint32_t>(T), b, t->block_size, out);
}

struct format {
  int64_t block;        // elements per block
  int64_t block_bytes;  // bytes per block
  decode_fn avx2;       // decoder for the AVX2 path
  decode_fn scalar;     // decoder for the portable path
};

format format_of(weight_dtype d) {
  const ggml_type_traits* t = ggml_type_info(weight_dtype_ggml_type(d));
  format f{t->block_size, t->type_size, nullptr, nullptr};
  switch (d) {
    case weight_dtype::q4_0: f.avx2 = dec_store<q4_0_regs>, f.scalar = dec_scalar<ggml_type::q4_0>; break;
    case weight_dtype::q4_1: f.avx2 = dec_store<q4_1_regs>, f.scalar = dec_scalar<ggml_type::q4_1>; break;
    case weight_dtype::q5_0: f.avx2 = dec_store<q5_0_regs>, f.scalar = dec_scalar<ggml_type::q5_0>; break;
    case weight_dtype::q5_1: f.avx2 = dec_store<q5_1_regs>, f.scalar = dec_scalar<ggml_type::q5_1>; break;
    case weight_dtype::q8_0: f.avx2 = dec_store<q8_0_regs>, f.scalar = dec_scalar<ggml_type::q8_0>; break;
    case weight_dtype::q4_k: f.avx2 = f.scalar = dec_scalar<ggml_type::q4_k>; break;
    case weight_dtype::q5_k: f.avx2 = f.scalar = dec_scalar<ggml_type::q5_k>; break;
    case weight_dtype::q6_k: f.avx2 = f.scalar = dec_scalar<ggml_type::q6_k>; break;
    default: break;
  }
  return f;
}

__attribute__((target("avx2,fma,f16c"))) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

constexpr int64_t max_block = 256;

// An R x C tile: x rows [R, k] (stride k), w rows of `row_bytes` (C of them), y stride ldy.
template <int R, int C>
__attribute__((target("avx2,fma,f16c"))) void qmicro_avx2(const format& f, const float* x, int64_t k, const uint8_t* w,
                                                          int64_t row_bytes, float* y, int64_t ldy) {
  alignas(32) float wb[C][max_block];
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const int64_t nb = k / f.block;
  const uint8_t* next = w + C * row_bytes;  // prefetched as in qmicro_regs
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t off = 0; off < C * f.block_bytes; off += 64)
      _mm_prefetch(reinterpret_cast<const char*>(next + b * C * f.block_bytes + off), _MM_HINT_T0);
    for (int c = 0; c < C; ++c) f.avx2(w + c * row_bytes + b * f.block_bytes, wb[c]);
    const float* xb = x + b * f.block;
    for (int64_t kk = 0; kk < f.block; kk += 8) {
      __m256 wv[C];
      for (int c = 0; c < C; ++c) wv[c] = _mm256_load_ps(wb[c] + kk);
      for (int r = 0; r < R; ++r) {
        const __m256 xv = _mm256_loadu_ps(xb + r * k + kk);
        for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[r * ldy + c] = hsum8(acc[r][c]);
}

// The same tile for a 32-element format whose decoder D the compiler inlines: each block of each
// column is decoded into registers and used at once (per (row, column) the FMAs run in the same
// order as above).
template <int R, int C, class D>
__attribute__((target("avx2,fma,f16c"))) void qmicro_regs(const format&, const float* x, int64_t k, const uint8_t* w,
                                                          int64_t row_bytes, float* y, int64_t ldy) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const int64_t nb = k / 32;
  // The C rows are contiguous, but each is only a few cache lines long: too short for the hardware
  // prefetchers to pick up. Fetch the next tile's bytes at the pace this tile consumes its own.
  const uint8_t* next = w + C * row_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * 32;
    for (int64_t off = 0; off < C * D::bytes; off += 64)
      _mm_prefetch(reinterpret_cast<const char*>(next + b * C * D::bytes + off), _MM_HINT_T0);
    if constexpr (R == 1) {  // decode: x's block stays in registers across the C columns
      __m256 xv[4];
      for (int p = 0; p < 4; ++p) xv[p] = _mm256_loadu_ps(xb + 8 * p);
      for (int c = 0; c < C; ++c) {
        __m256 wv[4];
        D::decode(w + c * row_bytes + b * D::bytes, wv);
        for (int p = 0; p < 4; ++p) acc[0][c] = _mm256_fmadd_ps(xv[p], wv[p], acc[0][c]);
      }
    } else {
      for (int c = 0; c < C; ++c) {
        __m256 wv[4];
        D::decode(w + c * row_bytes + b * D::bytes, wv);
        for (int r = 0; r < R; ++r)
          for (int p = 0; p < 4; ++p)
            acc[r][c] = _mm256_fmadd_ps(_mm256_loadu_ps(xb + r * k + 8 * p), wv[p], acc[r][c]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[r * ldy + c] = hsum8(acc[r][c]);
}

// The portable twin: the same lanes and lane tree as cpu_matmul.cpp's micro_generic.
template <int R, int C>
void qmicro_generic(const format& f, const float* x, int64_t k, const uint8_t* w, int64_t row_bytes, float* y,
                    int64_t ldy) {
  float wb[C][max_block];
  float acc[R][C][8] = {};
  const int64_t nb = k / f.block;
  for (int64_t b = 0; b < nb; ++b) {
    for (int c = 0; c < C; ++c) f.scalar(w + c * row_bytes + b * f.block_bytes, wb[c]);
    const float* xb = x + b * f.block;
    for (int64_t kk = 0; kk < f.block; kk += 8)
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c)
          for (int l = 0; l < 8; ++l) acc[r][c][l] += xb[r * k + kk + l] * wb[c][kk + l];
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const float* a = acc[r][c];
      y[r * ldy + c] = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    }
}

using qmicro_fn = void (*)(const format&, const float*, int64_t, const uint8_t*, int64_t, float*, int64_t);

struct qmicro_set {
  qmicro_fn f[tile_rows][tile_cols];
  qmicro_fn row_wide;

  // D: a register decoder, or void for the buffered kernels.
  template <class D, int R, int C>
  static qmicro_fn pick(bool avx) {
    if (!avx) return qmicro_generic<R, C>;
    if constexpr (std::is_void_v<D>) return qmicro_avx2<R, C>;
    else return qmicro_regs<R, C, D>;
  }
  template <class D, int R>
  void fill_row(bool avx) {
    f[R - 1][0] = pick<D, R, 1>(avx);
    f[R - 1][1] = pick<D, R, 2>(avx);
    f[R - 1][2] = pick<D, R, 3>(avx);
  }
  template <class D>
  static qmicro_set make(bool avx) {
    qmicro_set s{};
    s.fill_row<D, 1>(avx);
    s.fill_row<D, 2>(avx);
    s.fill_row<D, 3>(avx);
    s.fill_row<D, 4>(avx);
    s.row_wide = pick<D, 1, wide_cols>(avx);
    return s;
  }
  static const qmicro_set& get(weight_dtype d, bool avx) {
    static const qmicro_set g = make<void>(false), buffered = make<void>(true), q4_0 = make<q4_0_regs>(true),
                            q4_1 = make<q4_1_regs>(true), q5_0 = make<q5_0_regs>(true), q5_1 = make<q5_1_regs>(true),
                            q8_0 = make<q8_0_regs>(true);
    if (!avx) return g;
    switch (d) {
      case weight_dtype::q4_0: return q4_0;
      case weight_dtype::q4_1: return q4_1;
      case weight_dtype::q5_0: return q5_0;
      case weight_dtype::q5_1: return q5_1;
      case weight_dtype::q8_0: return q8_0;
      default: return buffered;
    }
  }
};

}  // namespace

void matmul_blocks(const float* x, int64_t m, const weight_matrix& w, const float* bias, float* y,
                   cpu_thread_pool& pool) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || n <= 0) return;
  const bool avx = cpu_matmul_uses_avx2();
  const format f = format_of(w.dtype);
  const decode_fn decode = avx ? f.avx2 : f.scalar;
  const qmicro_set& qs = qmicro_set::get(w.dtype, avx);
  const int64_t row_bytes = w.row_bytes();
  const uint8_t* wq = w.quant_data();
  // Tasks as in cpu_matmul.cpp: [row block x column block], a column block's float32 panel
  // (≤ ~256 KiB) staying in L2 while the rows stream past it.
  const int64_t nb = column_block_width(n, k, pool.num_threads(), 4, wide_cols);
  const int64_t mb = 64;
  const int64_t num_nblocks = (n + nb - 1) / nb, num_mblocks = (m + mb - 1) / mb;
  const std::function<void(int64_t)> body = [&](int64_t task) {
    const int64_t n0 = (task % num_nblocks) * nb, n1 = std::min(n, n0 + nb);
    const int64_t m0 = (task / num_nblocks) * mb, m1 = std::min(m, m0 + mb);
    if (m1 - m0 > small_m) {
      thread_local std::vector<float> panel;
      panel.resize(static_cast<size_t>((n1 - n0) * k));
      const int64_t blocks_per_row = k / f.block;
      for (int64_t j = n0; j < n1; ++j)
        for (int64_t b = 0; b < blocks_per_row; ++b)
          decode(wq + j * row_bytes + b * f.block_bytes, panel.data() + (j - n0) * k + b * f.block);
      matmul_f32_rows(x + m0 * k, m1 - m0, k, panel.data(), n1 - n0, y + m0 * n + n0, n);
    } else {
      for (int64_t i = m0; i < m1; i += tile_rows) {
        const int r = static_cast<int>(std::min<int64_t>(tile_rows, m1 - i));
        int64_t j = n0;
        if (r == 1)
          for (; j + wide_cols <= n1; j += wide_cols)
            qs.row_wide(f, x + i * k, k, wq + j * row_bytes, row_bytes, y + i * n + j, n);
        for (; j < n1; j += tile_cols) {
          const int c = static_cast<int>(std::min<int64_t>(tile_cols, n1 - j));
          qs.f[r - 1][c - 1](f, x + i * k, k, wq + j * row_bytes, row_bytes, y + i * n + j, n);
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
