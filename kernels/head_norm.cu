// Per-head RMSNorm kernel: one warp per (token, head) over the q and k heads; head_dim is small
// (64..256), so a warp's lanes stride over it and one shuffle reduction gives the sum of squares.
#include "kernels/common.cuh"
#include "kernels/head_norm.h"

namespace troupe {
namespace {

using namespace detail;

constexpr int kWarps = 4;  // heads per CTA

template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    head_rms_norm_kernel(T* __restrict__ qkv, const T* __restrict__ q_weight, const T* __restrict__ k_weight,
                         int64_t num_tokens, int num_heads, int num_kv_heads, int head_dim, float eps, float offset) {
  pdl_wait();
  pdl_launch_dependents();
  const int normed_heads = num_heads + num_kv_heads;
  const int64_t task = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;  // (token, head)
  if (task >= num_tokens * normed_heads) return;
  const int lane = threadIdx.x % 32;
  const int64_t tok = task / normed_heads;
  const int h = static_cast<int>(task % normed_heads);
  T* x = qkv + tok * static_cast<int64_t>(num_heads + 2 * num_kv_heads) * head_dim + static_cast<int64_t>(h) * head_dim;
  const T* w = h < num_heads ? q_weight : k_weight;
  float ss = 0.f;
  for (int i = lane; i < head_dim; i += 32) {
    const float v = to_float(x[i]);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(head_dim) + eps);
  // Gemma (offset 1) multiplies in float32 and rounds once (Gemma3RMSNorm); Qwen3 rounds x̂ first.
  if (offset != 0.f)
    for (int i = lane; i < head_dim; i += 32) x[i] = from_float<T>(to_float(x[i]) * inv * (to_float(w[i]) + offset));
  else
    for (int i = lane; i < head_dim; i += 32) x[i] = from_float<T>(to_float(w[i]) * to_float(from_float<T>(to_float(x[i]) * inv)));
}

}  // namespace

cudaError_t launch_head_rms_norm(const head_rms_norm_args& a, cudaStream_t stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  if (a.num_tokens < 0 || a.head_dim <= 0 || a.num_heads <= 0 || a.num_kv_heads <= 0 || !a.qkv || !a.q_weight ||
      !a.k_weight)
    return cudaErrorInvalidValue;
  const int64_t tasks = a.num_tokens * (a.num_heads + a.num_kv_heads);
  const int64_t blocks = (tasks + kWarps - 1) / kWarps;
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    return launch_programmatic(true, head_rms_norm_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(kWarps * 32),
                               stream, static_cast<T*>(a.qkv), static_cast<const T*>(a.q_weight),
                               static_cast<const T*>(a.k_weight), a.num_tokens, a.num_heads, a.num_kv_heads,
                               a.head_dim, a.eps, a.weight_offset);
  });
}

}  // namespace troupe
