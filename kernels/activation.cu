// SiLU-and-mul kernel: one CTA per token row, 16-byte vectors when the row allows it.
#include "kernels/activation.h"
#include "kernels/common.cuh"

namespace troupe {
namespace {

using namespace detail;

__device__ __forceinline__ float silu(float x) { return x / (1.f + __expf(-x)); }

template <class T, int VEC>
__global__ void silu_and_mul_kernel(T* __restrict__ out, const T* __restrict__ gate_up, int64_t inter) {
  const int64_t tok = blockIdx.x;
  const T* g = gate_up + tok * 2 * inter;
  const T* u = g + inter;
  T* o = out + tok * inter;
  for (int64_t v = threadIdx.x; v < inter / VEC; v += blockDim.x) {
    if constexpr (VEC == 8) {
      float a[8], b[8];
      load8(g + v * 8, a);
      load8(u + v * 8, b);
#pragma unroll
      for (int i = 0; i < 8; ++i) a[i] = to_float(from_float<T>(silu(a[i]))) * b[i];
      store8(o + v * 8, a);
    } else {
      o[v] = from_float<T>(to_float(from_float<T>(silu(to_float(g[v])))) * to_float(u[v]));
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
    if (a.inter % 8 == 0 && aligned16(out) && aligned16(in))
      silu_and_mul_kernel<T, 8><<<a.num_tokens, 256, 0, stream>>>(out, in, a.inter);
    else
      silu_and_mul_kernel<T, 1><<<a.num_tokens, 256, 0, stream>>>(out, in, a.inter);
    return cudaGetLastError();
  });
}

}  // namespace troupe
