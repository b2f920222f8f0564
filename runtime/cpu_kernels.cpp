// CPU float32 kernels besides the matmul (cpu_matmul.cpp): RMSNorm, rotary, SiLU-and-mul and paged
// attention, each with a fixed per-element reduction order. The scalar loops here are the fallback
// and the reference; the AVX2+FMA versions (cpu_simd.cpp) run when cpu_matmul_uses_avx2().
#include "runtime/cpu_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/cpu_simd.h"

namespace troupe {

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

namespace {

__attribute__((target("avx2,f16c"))) void axpy_f16_avx2(float a, const uint16_t* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, xv)));
  }
  for (; i < n; ++i) y[i] += a * _cvtsh_ss(x[i]);
}

}  // namespace

void axpy_f16(float a, const uint16_t* x, float* y, int64_t n) {
  if (cpu_matmul_uses_avx2()) return axpy_f16_avx2(a, x, y, n);
  for (int64_t i = 0; i < n; ++i) {
    const float p = a * f16_bits_to_f32(x[i]);
    y[i] += p;
  }
}

namespace {

__attribute__((target("avx2,f16c"))) void f32_to_f16_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = f32_to_f16_bits(x[i]);
}

}  // namespace

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  if (cpu_matmul_uses_avx2()) return f32_to_f16_avx2(x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16_bits(x[i]);
}

void rmsnorm(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* y) {
  if (cpu_matmul_uses_avx2()) return simd_avx2::rmsnorm(x, weight, rows, dim, eps, y);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    // Σ x² in double, in 8 lanes (i % 8) over whole chunks, a fixed tree, then the tail: the order
    // the AVX2 kernel uses, and x² is exact in double, so both paths give the same bits.
    double acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8)
      for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(xr[i + l]) * xr[i + l];
    double ss = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    float* yr = y + r * dim;
    for (i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * inv);
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
  // Per-dimension divisors (a GGUF's rope_freqs, LongRoPE's list in use): f_i / factor_i, as
  // llama.cpp and transformers apply them.
  if (rope.freq_factors.size() == inv.size())
    for (size_t i = 0; i < inv.size(); ++i) inv[i] = static_cast<float>(inv[i] / static_cast<double>(rope.freq_factors[i]));
  // Kept in float32 whatever the checkpoint's dtype: transformers computes inv_freq in float32 and
  // from_pretrained(dtype=bfloat16) keeps that buffer float32 (only `model.to(bf16)` would round
  // it, which is not how a checkpoint is served). Rounding it drifts the angles with position.
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
  if (cpu_matmul_uses_avx2()) return simd_avx2::rope_apply(v, num_heads, head_dim, cos, sin);
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
  if (simd_avx512::usable()) return simd_avx512::silu_mul(gate_up, rows, inter, out);
  if (cpu_matmul_uses_avx2()) return simd_avx2::silu_mul(gate_up, rows, inter, out);
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * inter;
    const float* u = g + inter;
    float* o = out + r * inter;
    for (int64_t i = 0; i < inter; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

void gelu_tanh_mul(const float* gate_up, int64_t rows, int64_t inter, float* out) {
  if (cpu_matmul_uses_avx2()) return simd_avx2::gelu_tanh_mul(gate_up, rows, inter, out);
  // PyTorch's gelu(approximate="tanh") in float32: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
  const float beta = static_cast<float>(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = 0.044715f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * inter;
    const float* u = g + inter;
    float* o = out + r * inter;
    for (int64_t i = 0; i < inter; ++i) {
      const float x = g[i], inner = beta * (x + kappa * x * x * x);
      o[i] = 0.5f * x * (1.0f + std::tanh(inner)) * u[i];
    }
  }
}

void softcap(float* x, int64_t n, float cap) {
  if (cpu_matmul_uses_avx2()) return simd_avx2::softcap(x, n, cap);
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] / cap) * cap;
}

float softmax_numerators(float* s, int64_t n) {
  if (simd_avx512::usable()) return simd_avx512::softmax_numerators(s, n);
  if (cpu_matmul_uses_avx2()) return simd_avx2::softmax_numerators(s, n);
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    const float e = std::exp(s[j] - mx);
    s[j] = e;
    sum += e;
  }
  return sum;
}

namespace {

// Attention over a float16 cache, one run of positions that are contiguous in one block at a time
// (keys and values are [block_seq_len, head_dim] per block). The arithmetic is dot_f16's and
// axpy_f16's exactly: each score is 8 lanes accumulated by FMA over head_dim then the same lane
// tree as cpu_matmul.cpp, and each output element gets "+= a · v" (product rounded, then the sum)
// in position order. What changes is that the output stays in registers across a run and there is
// no call per position.
__attribute__((target("avx2,fma,f16c"))) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// scores[j] = dot(q, k[j]) · scale for j in [0, n); k: [n, hd], hd a multiple of 8.
__attribute__((target("avx2,fma,f16c"))) void scores_f16_avx2(const float* q, const uint16_t* k, int64_t n,
                                                              int64_t hd, float scale, float* scores) {
  for (int64_t j = 0; j < n; ++j) {
    const uint16_t* kj = k + j * hd;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < hd; i += 8)
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i),
                            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kj + i))), acc);
    scores[j] = hsum8(acc) * scale;
  }
}

// out[i] += a[j] · v[j, i] for j in [0, n) in order; v: [n, hd], hd a multiple of 8. No FMA in the
// target, so product and sum round separately, as axpy_f16 does.
__attribute__((target("avx2,f16c"))) void weighted_sum_f16_avx2(const float* a, const uint16_t* v, int64_t n,
                                                                int64_t hd, float* out) {
  for (int64_t i = 0; i < hd; i += 8) {
    __m256 o = _mm256_loadu_ps(out + i);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 vj = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + j * hd + i)));
      o = _mm256_add_ps(o, _mm256_mul_ps(_mm256_set1_ps(a[j]), vj));
    }
    _mm256_storeu_ps(out + i, o);
  }
}

}  // namespace

void paged_attention_row(const float* q, const paged_kv_view& kv, int64_t lo, int64_t hi, float scale,
                         float* scores, float* out) {
  const int64_t hd = kv.head_dim, bsl = kv.block_seq_len;
  auto slot = [&](int64_t pos) {
    return static_cast<int64_t>(kv.block_table[pos / bsl]) * kv.block_stride + (pos % bsl) * hd;
  };
  const bool runs = kv.pool_f16 && hd % 8 == 0 && cpu_matmul_uses_avx2();
  // Runs of positions [j, j + len) that share a block.
  auto for_each_run = [&](auto&& fn) {
    for (int64_t j = lo; j <= hi;) {
      const int64_t len = std::min(hi + 1 - j, bsl - j % bsl);
      fn(j, len, slot(j));
      j += len;
    }
  };
  if (runs)
    for_each_run([&](int64_t j, int64_t len, int64_t at) {
      scores_f16_avx2(q, kv.pool_f16 + at + kv.k_offset, len, hd, scale, scores + (j - lo));
    });
  else
    for (int64_t j = lo; j <= hi; ++j) {
      const int64_t k = slot(j) + kv.k_offset;
      scores[j - lo] = (kv.pool_f16 ? dot_f16(q, kv.pool_f16 + k, hd) : dot_f32(q, kv.pool + k, hd)) * scale;
    }
  const float sum = softmax_numerators(scores, hi - lo + 1);
  std::fill(out, out + hd, 0.0f);
  if (runs)
    for_each_run([&](int64_t j, int64_t len, int64_t at) {
      weighted_sum_f16_avx2(scores + (j - lo), kv.pool_f16 + at + kv.v_offset, len, hd, out);
    });
  else
    for (int64_t j = lo; j <= hi; ++j) {
      const int64_t v = slot(j) + kv.v_offset;
      if (kv.pool_f16) axpy_f16(scores[j - lo], kv.pool_f16 + v, out, hd);
      else axpy_f32(scores[j - lo], kv.pool + v, out, hd);
    }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < hd; ++i) out[i] *= inv;
}

}  // namespace troupe
