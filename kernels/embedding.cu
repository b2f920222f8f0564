// Row gather and random fill kernels.
#include "kernels/common.cuh"
#include "kernels/embedding.h"

namespace troupe {
namespace {

using namespace detail;

template <class T, int VEC>
__global__ void gather_rows_kernel(T* __restrict__ out, const T* __restrict__ table, const int32_t* __restrict__ ids,
                                   int64_t num_table_rows, int64_t width, float scale) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t r = blockIdx.x;
  const int64_t id = ids[r];
  const bool valid = id >= 0 && id < num_table_rows;
  T* dst = out + r * width;
  const T* src = table + (valid ? id : 0) * width;
  // The scale is rounded to the dtype first, as Gemma's scaled embedding casts it to the weights'.
  const float sc = to_float(from_float<T>(scale));
  for (int64_t v = threadIdx.x; v < width / VEC; v += blockDim.x) {
    if constexpr (VEC == 8) {
      vec8 x = valid ? reinterpret_cast<const vec8*>(src)[v] : vec8{make_uint4(0, 0, 0, 0)};
      if (scale != 0.f) {
        float f[8];
        load8(reinterpret_cast<const T*>(&x), f);
#pragma unroll
        for (int i = 0; i < 8; ++i) f[i] *= sc;
        store8(reinterpret_cast<T*>(&x), f);
      }
      reinterpret_cast<vec8*>(dst)[v] = x;
    } else {
      const T x = valid ? src[v] : from_float<T>(0.f);
      dst[v] = scale != 0.f ? from_float<T>(to_float(x) * sc) : x;
    }
  }
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

template <class T>
__global__ void random_fill_kernel(T* out, int64_t n, float scale, float offset, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(i)));
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    out[i] = from_float<T>(offset + scale * (2.f * u - 1.f));
  }
}

}  // namespace

cudaError_t launch_gather_rows(const gather_rows_args& a, cudaStream_t stream) {
  if (a.num_rows == 0) return cudaSuccess;
  if (a.num_rows < 0 || a.num_rows > INT32_MAX || a.width <= 0) return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    auto* out = static_cast<T*>(a.out);
    auto* table = static_cast<const T*>(a.table);
    const dim3 grid(static_cast<unsigned>(a.num_rows));
    if (a.width % 8 == 0 && aligned16(out) && aligned16(table))
      return launch_programmatic(true, gather_rows_kernel<T, 8>, grid, dim3(128), stream, out, table, a.ids,
                                 a.num_table_rows, a.width, a.scale);
    return launch_programmatic(true, gather_rows_kernel<T, 1>, grid, dim3(128), stream, out, table, a.ids,
                               a.num_table_rows, a.width, a.scale);
  });
}

cudaError_t launch_random_fill(const random_fill_args& a, cudaStream_t stream) {
  if (a.num_elements == 0) return cudaSuccess;
  if (a.num_elements < 0) return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const int64_t blocks = std::min<int64_t>((a.num_elements + 255) / 256, 4096);
    random_fill_kernel<T><<<blocks, 256, 0, stream>>>(static_cast<T*>(a.out), a.num_elements, a.scale, a.offset,
                                                      a.seed);
    return cudaGetLastError();
  });
}

}  // namespace troupe
