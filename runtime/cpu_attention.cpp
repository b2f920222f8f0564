// Query-tiled paged attention (cpu_attention.h): scores, softmax and the weighted sum of values for
// a tile of query rows × heads, sharing each float16 block run's conversion among the tile.
#include "runtime/cpu_attention.h"

#include <immintrin.h>

#include <algorithm>

namespace troupe {
namespace {

// Design note: paged_attention_row computes, per row, (1) every score q·k_j · scale as 8 lanes
// accumulated by FMA over head_dim then one horizontal-sum tree, (2) softmax_numerators over the
// row's positions [lo, pos] (exp and a sum whose order depends on the range's length only),
// (3) out += e_j · v_j in position order with product and sum rounded apart, (4) out *= 1 / sum. Here steps (1) and (3) run for many rows at once over a float32 copy of the
// block run (the float16 → float32 conversion is exact), each row keeping its own accumulators and
// order, so only loads and conversions are shared; (2) and (4) are the same calls/loops per row.
// Rows whose key range does not cover a whole run (the causal edge, a sliding window's start) take
// the one-row kernels for that run: same arithmetic, in the same position order.

__attribute__((target("avx2,fma"))) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// dst[n] = float32 of src[n] halves, n a multiple of 8.
__attribute__((target("avx2,f16c"))) void f16_to_f32(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
}

// s[r][j] = dot(q[r], k[j]) · scale for NR rows and j in [0, n); k: [n, hd] float32, hd % 8 == 0.
// Two positions at a time: 2·NR independent FMA chains, each k chunk loaded once for all rows.
template <int NR>
__attribute__((target("avx2,fma"))) void scores_rows(const float* const* q, const float* k, int64_t n, int64_t hd,
                                                     float scale, float* const* s) {
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    __m256 a0[NR], a1[NR];
    for (int r = 0; r < NR; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
    const float* k0 = k + j * hd;
    const float* k1 = k0 + hd;
    for (int64_t i = 0; i < hd; i += 8) {
      const __m256 kv0 = _mm256_loadu_ps(k0 + i), kv1 = _mm256_loadu_ps(k1 + i);
      for (int r = 0; r < NR; ++r) {
        const __m256 qv = _mm256_loadu_ps(q[r] + i);
        a0[r] = _mm256_fmadd_ps(qv, kv0, a0[r]);
        a1[r] = _mm256_fmadd_ps(qv, kv1, a1[r]);
      }
    }
    for (int r = 0; r < NR; ++r) {
      s[r][j] = hsum8(a0[r]) * scale;
      s[r][j + 1] = hsum8(a1[r]) * scale;
    }
  }
  for (; j < n; ++j) {
    __m256 a[NR];
    for (int r = 0; r < NR; ++r) a[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < hd; i += 8) {
      const __m256 kv = _mm256_loadu_ps(k + j * hd + i);
      for (int r = 0; r < NR; ++r) a[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q[r] + i), kv, a[r]);
    }
    for (int r = 0; r < NR; ++r) s[r][j] = hsum8(a[r]) * scale;
  }
}

// out[r][i] += e[r][j] · v[j, i] for NR rows, j in [0, n) in order; v: [n, hd] float32. No FMA in
// the target: product and sum round apart, as axpy_f16 and paged_attention_row do.
template <int NR>
__attribute__((target("avx2"))) void weighted_rows(const float* const* e, const float* v, int64_t n, int64_t hd,
                                                   float* const* out) {
  int64_t i = 0;
  for (; i + 16 <= hd; i += 16) {
    __m256 o0[NR], o1[NR];
    for (int r = 0; r < NR; ++r) o0[r] = _mm256_loadu_ps(out[r] + i), o1[r] = _mm256_loadu_ps(out[r] + i + 8);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 v0 = _mm256_loadu_ps(v + j * hd + i), v1 = _mm256_loadu_ps(v + j * hd + i + 8);
      for (int r = 0; r < NR; ++r) {
        const __m256 a = _mm256_set1_ps(e[r][j]);
        o0[r] = _mm256_add_ps(o0[r], _mm256_mul_ps(a, v0));
        o1[r] = _mm256_add_ps(o1[r], _mm256_mul_ps(a, v1));
      }
    }
    for (int r = 0; r < NR; ++r) _mm256_storeu_ps(out[r] + i, o0[r]), _mm256_storeu_ps(out[r] + i + 8, o1[r]);
  }
  for (; i < hd; i += 8) {
    __m256 o[NR];
    for (int r = 0; r < NR; ++r) o[r] = _mm256_loadu_ps(out[r] + i);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 vj = _mm256_loadu_ps(v + j * hd + i);
      for (int r = 0; r < NR; ++r) o[r] = _mm256_add_ps(o[r], _mm256_mul_ps(_mm256_set1_ps(e[r][j]), vj));
    }
    for (int r = 0; r < NR; ++r) _mm256_storeu_ps(out[r] + i, o[r]);
  }
}

// The tile's (row, head) pairs as flat rows v = r · num_heads + g.
struct tile_rows {
  const attention_tile& t;
  int64_t hd;
  int64_t pos(int64_t v) const { return t.first_pos + v / t.num_heads; }
  int64_t lo(int64_t v) const { return t.window > 0 ? std::max<int64_t>(0, pos(v) - t.window + 1) : 0; }
  const float* q(int64_t v) const { return t.q + (v / t.num_heads) * t.q_row_stride + (v % t.num_heads) * hd; }
  float* out(int64_t v) const { return t.out + (v / t.num_heads) * t.out_row_stride + (v % t.num_heads) * hd; }
};

// Runs of positions [j, j + len) in [lo, hi] that share a block; fn(j, len, element offset of j).
template <class Fn>
void for_each_run(const paged_kv_view& kv, int64_t lo, int64_t hi, Fn&& fn) {
  const int64_t bsl = kv.block_seq_len;
  for (int64_t j = lo; j <= hi;) {
    const int64_t len = std::min(hi + 1 - j, bsl - j % bsl);
    fn(j, len, static_cast<int64_t>(kv.block_table[j / bsl]) * kv.block_stride + (j % bsl) * kv.head_dim);
    j += len;
  }
}

// Scores of rows [v0, v0 + nr) for the run of positions [j, j + n) held in k.
void scores_group(const tile_rows& tr, int64_t v0, int nr, const float* k, int64_t n, float* const* s) {
  const float* q[4];
  for (int r = 0; r < nr; ++r) q[r] = tr.q(v0 + r);
  switch (nr) {
    case 4: return scores_rows<4>(q, k, n, tr.hd, tr.t.scale, s);
    case 3: return scores_rows<3>(q, k, n, tr.hd, tr.t.scale, s);
    case 2: return scores_rows<2>(q, k, n, tr.hd, tr.t.scale, s);
    default: return scores_rows<1>(q, k, n, tr.hd, tr.t.scale, s);
  }
}

void weighted_group(int nr, const float* const* e, const float* v, int64_t n, int64_t hd, float* const* out) {
  switch (nr) {
    case 4: return weighted_rows<4>(e, v, n, hd, out);
    case 3: return weighted_rows<3>(e, v, n, hd, out);
    case 2: return weighted_rows<2>(e, v, n, hd, out);
    default: return weighted_rows<1>(e, v, n, hd, out);
  }
}

}  // namespace

int64_t attention_tile_span(const attention_tile& t) {
  const int64_t last = t.first_pos + t.num_rows - 1;
  const int64_t lo = t.window > 0 ? std::max<int64_t>(0, t.first_pos - t.window + 1) : 0;
  return last - lo + 1;
}

int64_t attention_tile_scratch_floats(int64_t rows_x_heads, int64_t max_span, const paged_kv_view& kv) {
  // scores [rows_x_heads, max_span], sums [rows_x_heads], one float32 block run [block_seq_len, head_dim]
  return rows_x_heads * (max_span + 1) + kv.block_seq_len * kv.head_dim;
}

void paged_attention_tile(const attention_tile& t, const paged_kv_view& kv, float* scratch) {
  const int64_t hd = kv.head_dim, nrows = t.num_rows * t.num_heads, span = attention_tile_span(t);
  const tile_rows tr{t, hd};
  if (!(kv.pool_f16 && hd % 8 == 0 && cpu_matmul_uses_avx2())) {
    for (int64_t v = 0; v < nrows; ++v) paged_attention_row(tr.q(v), kv, tr.lo(v), tr.pos(v), t.scale, scratch, tr.out(v));
    return;
  }
  const int64_t lo_min = tr.lo(0), hi_max = tr.pos(nrows - 1);
  float* scores = scratch;             // [nrows, span]: row v's score of position j at v * span + j - lo_min
  float* sums = scores + nrows * span;  // [nrows]
  float* buf = sums + nrows;           // [block_seq_len, head_dim]: one run of K or V in float32
  auto row_scores = [&](int64_t v) { return scores + v * span - lo_min; };  // indexed by position

  // (1) Scores of every row over the whole span; a row's positions outside [lo, pos] are never read.
  for_each_run(kv, lo_min, hi_max, [&](int64_t j, int64_t len, int64_t at) {
    f16_to_f32(kv.pool_f16 + at + kv.k_offset, len * hd, buf);
    for (int64_t v0 = 0; v0 < nrows; v0 += 4) {
      const int nr = static_cast<int>(std::min<int64_t>(4, nrows - v0));
      float* s[4];
      for (int r = 0; r < nr; ++r) s[r] = row_scores(v0 + r) + j;
      scores_group(tr, v0, nr, buf, len, s);
    }
  });

  // (2) Softmax numerators and sums per row, as paged_attention_row.
  for (int64_t v = 0; v < nrows; ++v) {
    float* s = row_scores(v);
    const int64_t lo = tr.lo(v), hi = tr.pos(v);
    sums[v] = softmax_numerators(s + lo, hi - lo + 1);
    std::fill(tr.out(v), tr.out(v) + hd, 0.0f);
  }

  // (3) Weighted values: rows of a group of 4 whose range covers the run go together; the others
  // take their part of the run alone.
  for_each_run(kv, lo_min, hi_max, [&](int64_t j, int64_t len, int64_t at) {
    f16_to_f32(kv.pool_f16 + at + kv.v_offset, len * hd, buf);
    for (int64_t v0 = 0; v0 < nrows; v0 += 4) {
      const int nr = static_cast<int>(std::min<int64_t>(4, nrows - v0));
      bool whole = true;
      for (int r = 0; r < nr; ++r) whole = whole && tr.lo(v0 + r) <= j && j + len - 1 <= tr.pos(v0 + r);
      if (whole) {
        const float* e[4];
        float* out[4];
        for (int r = 0; r < nr; ++r) e[r] = row_scores(v0 + r) + j, out[r] = tr.out(v0 + r);
        weighted_group(nr, e, buf, len, hd, out);
        continue;
      }
      for (int64_t v = v0; v < v0 + nr; ++v) {
        const int64_t a = std::max(j, tr.lo(v)), b = std::min(j + len - 1, tr.pos(v));
        if (a > b) continue;
        const float* e = row_scores(v) + a;
        float* out = tr.out(v);
        weighted_rows<1>(&e, buf + (a - j) * hd, b - a + 1, hd, &out);
      }
    }
  });

  // (4) Normalise.
  for (int64_t v = 0; v < nrows; ++v) {
    const float inv = 1.0f / sums[v];
    float* o = tr.out(v);
    for (int64_t i = 0; i < hd; ++i) o[i] *= inv;
  }
}

}  // namespace troupe
