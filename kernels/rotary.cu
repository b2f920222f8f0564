// Rotary kernel: one thread per (token, head, rotation pair); the QKV bias is fused in.
#include <cmath>

#include "kernels/common.cuh"
#include "kernels/rotary.h"

namespace troupe {
namespace {

using namespace detail;

// grid.x covers tokens; grid.y CTAs share the (head, i) pairs of a token. Heads [0, Hq) are q,
// [Hq, Hq + Hkv) are k (rotated), [Hq + Hkv, Hq + 2 Hkv) are v (bias only).
template <class T>
__global__ void rotary_kernel(T* __restrict__ qkv, const T* __restrict__ bias, const int32_t* __restrict__ positions,
                              const float* __restrict__ inv_freq, int num_heads, int num_kv_heads, int head_dim,
                              const int32_t* __restrict__ slots, paged_kv_layout cache, int32_t layer) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t tok = blockIdx.x;
  const int32_t slot = slots ? slots[tok] : -1;
  const int half = head_dim / 2;
  const int total_heads = num_heads + 2 * num_kv_heads;
  const int rotated_heads = num_heads + num_kv_heads;
  const float pos = static_cast<float>(positions[tok]);
  T* row = qkv + tok * static_cast<int64_t>(total_heads) * head_dim;
  const int work = (bias || slots ? total_heads : rotated_heads) * half;
  for (int w = blockIdx.y * blockDim.x + threadIdx.x; w < work; w += gridDim.y * blockDim.x) {
    const int h = w / half, i = w % half;
    T* x = row + h * head_dim;
    float a = to_float(x[i]), b = to_float(x[i + half]);
    if (bias) {
      // Round after the bias like a separate bf16 bias add would.
      a = to_float(from_float<T>(a + to_float(bias[h * head_dim + i])));
      b = to_float(from_float<T>(b + to_float(bias[h * head_dim + i + half])));
    }
    if (h < rotated_heads) {
      float s, c;
      sincosf(pos * inv_freq[i], &s, &c);
      const float na = a * c - b * s, nb = b * c + a * s;
      a = na;
      b = nb;
    }
    const T ta = from_float<T>(a), tb = from_float<T>(b);
    x[i] = ta;
    x[i + half] = tb;
    if (slot >= 0 && h >= num_heads) {
      const int kv = h < rotated_heads ? 0 : 1;
      const int head = h - num_heads - kv * num_kv_heads;
      T* dst = static_cast<T*>(cache.pool) +
               cache.offset(slot / cache.block_seq_len, layer, kv, head, slot % cache.block_seq_len);
      dst[i] = ta;
      dst[i + half] = tb;
    }
  }
}

}  // namespace

cudaError_t launch_rotary(const rotary_args& a, cudaStream_t stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  if (a.num_tokens < 0 || a.num_tokens > INT32_MAX || a.head_dim <= 0 || a.head_dim % 2 || a.num_heads <= 0 ||
      a.num_kv_heads <= 0 || (a.slots && (!a.cache.pool || a.cache.block_seq_len <= 0 || a.cache.head_dim != a.head_dim)))
    return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const int pairs = (a.num_heads + 2 * a.num_kv_heads) * a.head_dim / 2;
    const int threads = pairs >= 256 ? 256 : ((pairs + 31) / 32) * 32;
    // A token's pairs over several CTAs when the step has few tokens (decode), one CTA otherwise.
    const unsigned split = a.num_tokens >= 64 ? 1u : static_cast<unsigned>((pairs + threads - 1) / threads);
    return launch_programmatic(true, rotary_kernel<T>, dim3(static_cast<unsigned>(a.num_tokens), split), dim3(threads),
                               stream, static_cast<T*>(a.qkv), static_cast<const T*>(a.bias), a.positions, a.inv_freq,
                               a.num_heads, a.num_kv_heads, a.head_dim, a.slots, a.cache, a.layer);
  });
}

std::vector<float> rotary_inv_freq(const rope_config& rope, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    f[i] = static_cast<float>(1.0 / std::pow(rope.theta, static_cast<double>(2 * i) / static_cast<double>(head_dim)));
  if (rope.type == "linear" && rope.factor > 0) {
    for (auto& v : f) v = static_cast<float>(v / rope.factor);
  } else if (rope.type == "llama3") {
    // transformers' _compute_llama3_parameters.
    const double pi = 3.14159265358979323846;
    const double old_ctx = static_cast<double>(rope.original_max_position_embeddings);
    const double low_wavelen = old_ctx / rope.low_freq_factor;
    const double high_wavelen = old_ctx / rope.high_freq_factor;
    for (auto& v : f) {
      const double freq = v;
      const double wavelen = 2 * pi / freq;
      double out = wavelen > low_wavelen ? freq / rope.factor : freq;
      const double smooth = (old_ctx / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      if (medium) out = (1 - smooth) * freq / rope.factor + smooth * freq;
      v = static_cast<float>(out);
    }
  }
  // Per-dimension divisors (a GGUF's rope_freqs, LongRoPE's list in use), as in rope_inv_freq.
  if (rope.freq_factors.size() == f.size())
    for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(f[i] / static_cast<double>(rope.freq_factors[i]));
  return f;
}

}  // namespace troupe
