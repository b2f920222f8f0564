// SiLU-and-mul (or GeGLU) kernel: grid.x token rows, grid.y CTAs per row, 16-byte vectors when the
// row allows it; and the logit soft-capping kernel.
#include <algorithm>

#include "kernels/activation.h"
#include "kernels/common.cuh"

namespace troupe {
namespace {

using namespace detail;

__device__ __forceinline__ float silu(float x) { return x / (1.f + __expf(-x)); }

// PyTorch's gelu(approximate="tanh"): 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
__device__ __forceinline__ float gelu_tanh(float x) {
  constexpr float kBeta = 0.7978845608028654f;  // √(2/π)
  return 0.5f * x * (1.f + tanhf(kBeta * (x + 0.044715f * x * x * x)));
}

template <bool GELU>
__device__ __forceinline__ float act(float x) {
  if constexpr (GELU) return gelu_tanh(x);
  else return silu(x);
}

template <class T, int VEC, bool GELU>
__global__ void silu_and_mul_kernel(T* __restrict__ out, const T* __restrict__ gate_up, int64_t inter) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t tok = blockIdx.x;
  const T* g = gate_up + tok * 2 * inter;
  const T* u = g + inter;
  T* o = out + tok * inter;
  // grid.y CTAs share a token's row (a decode step has one row per sequence: one CTA would walk
  // it in a chain of dependent iterations).
  for (int64_t v = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; v < inter / VEC;
       v += static_cast<int64_t>(gridDim.y) * blockDim.x) {
    if constexpr (VEC == 8) {
      float a[8], b[8];
      load8(g + v * 8, a);
      load8(u + v * 8, b);
#pragma unroll
      for (int i = 0; i < 8; ++i) a[i] = to_float(from_float<T>(act<GELU>(a[i]))) * b[i];
      store8(o + v * 8, a);
    } else {
      o[v] = from_float<T>(to_float(from_float<T>(act<GELU>(to_float(g[v])))) * to_float(u[v]));
    }
  }
}

}  // namespace

cudaError_t launch_silu_and_mul(const silu_and_mul_args& a, cudaStream_t stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  if (a.num_tokens < 0 || a.num_tokens > INT32_MAX || a.inter <= 0) return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    auto* out = static_cast<T*>(a.out);
    auto* in = static_cast<const T*>(a.gate_up);
    const bool vec = a.inter % 8 == 0 && aligned16(out) && aligned16(in);
    const int64_t per_row = vec ? a.inter / 8 : a.inter;
    const dim3 grid(static_cast<unsigned>(a.num_tokens),
                    static_cast<unsigned>(std::min<int64_t>((per_row + 255) / 256, 64)));
    if (a.gelu_tanh)
      return vec ? launch_programmatic(true, silu_and_mul_kernel<T, 8, true>, grid, dim3(256), stream, out, in, a.inter)
                 : launch_programmatic(true, silu_and_mul_kernel<T, 1, true>, grid, dim3(256), stream, out, in, a.inter);
    return vec ? launch_programmatic(true, silu_and_mul_kernel<T, 8, false>, grid, dim3(256), stream, out, in, a.inter)
               : launch_programmatic(true, silu_and_mul_kernel<T, 1, false>, grid, dim3(256), stream, out, in, a.inter);
  });
}

namespace {

__global__ void softcap_kernel(float* __restrict__ x, int64_t n, float cap) {
  pdl_wait();
  pdl_launch_dependents();
  const float inv = 1.f / cap;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = cap * tanhf(x[i] * inv);
}

}  // namespace

cudaError_t launch_softcap(float* x, int64_t n, float cap, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (n < 0 || !(cap > 0.f)) return cudaErrorInvalidValue;
  const int64_t blocks = std::min<int64_t>((n + 255) / 256, 4096);
  return launch_programmatic(true, softcap_kernel, dim3(static_cast<unsigned>(blocks)), dim3(256), stream, x, n, cap);
}

}  // namespace troupe
