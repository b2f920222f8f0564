// CPU float32 kernels. The matmul is hand-blocked rather than BLAS: OpenBLAS picks different
// kernels (gemv for one row, blocked gemm otherwise) and so sums in an order that depends on M,
// which would make a sequence's logits depend on what else shares the step.
#include "runtime/cpu_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>
#include <cstdlib>

namespace troupe {
namespace {

// Design note (matmul_nt): every output element y[i, j] is one dot product of x row i with w row j,
// computed as 8 lanes accumulated over k in increasing order (one FMA per lane per step), reduced
// lanes 0..7 by a fixed tree, then the k % 8 tail added in order. Register tiles of up to 4 rows x 3
// columns only share loads between such dot products; they never split one. Threads split the
// columns (n) into blocks, so the per-element order is the same for any m, tiling or thread count.
// The AVX2+FMA path is chosen once per process from the CPU, so one machine always uses one path.

constexpr int tile_rows = 4;
constexpr int tile_cols = 3;

__attribute__((target("avx2,fma"))) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // lanes i + (i+4)
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                          // (0+2), (1+3)
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));                                      // 0 + 1
  return _mm_cvtss_f32(s);
}

template <int R, int C>
__attribute__((target("avx2,fma"))) void micro_avx2(const float* x, int64_t k, const float* w, float* y,
                                                    int64_t ldy) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    __m256 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm256_loadu_ps(w + c * k + kk);
    for (int r = 0; r < R; ++r) {
      __m256 xv = _mm256_loadu_ps(x + r * k + kk);
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

// Portable path with the same structure: 8 lane accumulators, the same lane tree, then the tail.
inline float hsum8_generic(const float* a) {
  float s0 = a[0] + a[4], s1 = a[1] + a[5], s2 = a[2] + a[6], s3 = a[3] + a[7];
  s0 = s0 + s2;
  s1 = s1 + s3;
  return s0 + s1;
}

template <int R, int C>
void micro_generic(const float* x, int64_t k, const float* w, float* y, int64_t ldy) {
  float acc[R][C][8] = {};
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c)
        for (int l = 0; l < 8; ++l) acc[r][c][l] += x[r * k + kk + l] * w[c * k + kk + l];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float s = hsum8_generic(acc[r][c]);
      for (int64_t t = kk; t < k; ++t) s += x[r * k + t] * w[c * k + t];
      y[r * ldy + c] = s;
    }
}

using micro_fn = void (*)(const float*, int64_t, const float*, float*, int64_t);

bool use_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

// micros[r - 1][c - 1]: the kernel for an r x c tile.
struct micro_set {
  micro_fn f[tile_rows][tile_cols];
};

template <int R>
void fill_row(micro_set& s, bool avx) {
  if (avx) {
    s.f[R - 1][0] = micro_avx2<R, 1>;
    s.f[R - 1][1] = micro_avx2<R, 2>;
    s.f[R - 1][2] = micro_avx2<R, 3>;
  } else {
    s.f[R - 1][0] = micro_generic<R, 1>;
    s.f[R - 1][1] = micro_generic<R, 2>;
    s.f[R - 1][2] = micro_generic<R, 3>;
  }
}

const micro_set& micros() {
  static const micro_set set = [] {
    micro_set s{};
    const bool avx = use_avx2();
    fill_row<1>(s, avx);
    fill_row<2>(s, avx);
    fill_row<3>(s, avx);
    fill_row<4>(s, avx);
    return s;
  }();
  return set;
}

}  // namespace

void matmul_nt(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* bias, float* y,
               cpu_thread_pool& pool) {
  if (m <= 0 || n <= 0) return;
  const micro_set& ms = micros();
  // Column blocks: enough tasks to balance threads, small enough that a block of w stays in L2
  // while every row tile of x streams past it.
  const int64_t want_tasks = static_cast<int64_t>(pool.num_threads()) * 8;
  int64_t nb = (n + want_tasks - 1) / want_tasks;
  nb = std::clamp<int64_t>((nb + tile_cols - 1) / tile_cols * tile_cols, 12, 96);
  const int64_t num_tasks = (n + nb - 1) / nb;
  pool.parallel_for(num_tasks, [&](int64_t task) {
    const int64_t n0 = task * nb, n1 = std::min(n, n0 + nb);
    for (int64_t i = 0; i < m; i += tile_rows) {
      const int r = static_cast<int>(std::min<int64_t>(tile_rows, m - i));
      for (int64_t j = n0; j < n1; j += tile_cols) {
        const int c = static_cast<int>(std::min<int64_t>(tile_cols, n1 - j));
        ms.f[r - 1][c - 1](x + i * k, k, w + j * k, y + i * n + j, n);
      }
    }
    if (bias)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = n0; j < n1; ++j) y[i * n + j] += bias[j];
  });
}

float dot_f32(const float* a, const float* b, int64_t n) {
  float y;
  micros().f[0][0](a, n, b, &y, 1);
  return y;
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    float* yr = y + r * dim;
    for (int64_t i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * inv);
  }
}

std::vector<float> rope_inv_freq(const rope_config& rope, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv[i] = static_cast<float>(
        1.0 / std::pow(rope.theta, static_cast<double>(2 * i) / static_cast<double>(head_dim)));
  if (rope.type == "linear" && rope.factor > 0) {
    for (auto& f : inv) f = static_cast<float>(f / rope.factor);
  } else if (rope.type == "llama3") {
    // transformers' _compute_llama3_parameters: long wavelengths are divided by factor, short ones
    // kept, the band between interpolated smoothly.
    const double old_ctx = static_cast<double>(rope.original_max_position_embeddings);
    const double low_wavelen = old_ctx / rope.low_freq_factor;
    const double high_wavelen = old_ctx / rope.high_freq_factor;
    for (auto& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      double scaled = wavelen > low_wavelen ? f / rope.factor : f;
      if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
        const double smooth = (old_ctx / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
        scaled = (1.0 - smooth) * scaled / rope.factor + smooth * scaled;
      }
      f = static_cast<float>(scaled);
    }
  }
  if (getenv("TROUPE_ROPE_BF16")) for (auto& f : inv) { uint32_t b; memcpy(&b,&f,4); b = (b + 0x7fff + ((b>>16)&1)) & 0xffff0000u; memcpy(&f,&b,4);} 
  return inv;
}

void rope_cos_sin(const std::vector<float>& inv_freq, int64_t pos, float* cos_out, float* sin_out) {
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];  // float32, as transformers computes it
    cos_out[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
    sin_out[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
  }
}

void rope_apply(float* v, int64_t num_heads, int64_t head_dim, const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < num_heads; ++h) {
    float* x = v + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float x1 = x[i], x2 = x[i + half];
      x[i] = x1 * cos[i] - x2 * sin[i];
      x[i + half] = x2 * cos[i] + x1 * sin[i];
    }
  }
}

void silu_mul(const float* gate_up, int64_t rows, int64_t inter, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * inter;
    const float* u = g + inter;
    float* o = out + r * inter;
    for (int64_t i = 0; i < inter; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

void paged_attention_row(const float* q, const paged_kv_view& kv, int64_t lo, int64_t hi, float scale,
                         float* scores, float* out) {
  const int64_t hd = kv.head_dim;
  auto slot = [&](int64_t pos) {
    return kv.pool + static_cast<int64_t>(kv.block_table[pos / kv.block_seq_len]) * kv.block_stride +
           (pos % kv.block_seq_len) * hd;
  };
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = lo; j <= hi; ++j) {
    const float s = dot_f32(q, slot(j) + kv.k_offset, hd) * scale;
    scores[j - lo] = s;
    mx = std::max(mx, s);
  }
  float sum = 0.0f;
  for (int64_t j = lo; j <= hi; ++j) {
    const float e = std::exp(scores[j - lo] - mx);
    scores[j - lo] = e;
    sum += e;
  }
  std::fill(out, out + hd, 0.0f);
  for (int64_t j = lo; j <= hi; ++j) axpy_f32(scores[j - lo], slot(j) + kv.v_offset, out, hd);
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < hd; ++i) out[i] *= inv;
}

}  // namespace troupe
