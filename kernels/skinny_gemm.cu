// Skinny GEMM kernel: 1, 2 or 4 warps per output column n (a weight row), lanes striding K in 16-byte chunks.
#include "kernels/common.cuh"
#include "kernels/skinny_gemm.h"

namespace troupe {
namespace {

using namespace detail;

constexpr int kWarps = 8;
constexpr int kUnroll = 8;  // 16-byte weight loads in flight per lane

template <class T>
__device__ __forceinline__ void fma8(float& acc, const uint4& wv, const uint4& xv) {
  const T* w = reinterpret_cast<const T*>(&wv);
  const T* x = reinterpret_cast<const T*>(&xv);
#pragma unroll
  for (int i = 0; i < 8; ++i) acc = fmaf(to_float(w[i]), to_float(x[i]), acc);
}

// Design note: the weights stream through once (evict-first loads); X (at most 8 rows) is re-read
// by every warp and stays in L1/L2. KSPLIT warps share one column, each taking every KSPLIT-th
// 32-chunk stripe of K, so a narrow product (n = 4096) still puts every SM's warps to work and each
// lane's loads are issued together; lanes keep M float accumulators, reduced per warp, then across
// the column's warps in shared memory.
template <class T, class Y, int M, int KSPLIT>
__global__ void __launch_bounds__(kWarps * 32) skinny_gemm_kernel(Y* __restrict__ y, const T* __restrict__ x,
                                                                   const T* __restrict__ w, int64_t n, int64_t k,
                                                                   int64_t ldx, int64_t ldy) {
  constexpr int kCols = kWarps / KSPLIT;  // columns per CTA
  __shared__ float part_s[kWarps][M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int part = warp % KSPLIT;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kCols + warp / KSPLIT;
  const bool active = col < n;  // warp-uniform; inactive warps still reach the barrier
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  const uint4* wrow = reinterpret_cast<const uint4*>(w + (active ? col : 0) * k);
  const int64_t chunks = k / 8, stride = 32 * KSPLIT;
  int64_t c = part * 32 + lane;
  // The first weight batch is loaded before waiting for the kernel that produces X (programmatic
  // dependent launch): weights are never written, so these loads overlap that kernel's tail.
  uint4 wv[kUnroll];
  if (active && c + stride * (kUnroll - 1) < chunks) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wv[u] = __ldcs(wrow + c + stride * u);
  }
  pdl_wait();
  pdl_launch_dependents();
  if (active) {
    while (c + stride * (kUnroll - 1) < chunks) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int m = 0; m < M; ++m)
          fma8<T>(acc[m], wv[u], __ldg(reinterpret_cast<const uint4*>(x + m * ldx) + c + stride * u));
      c += stride * kUnroll;
      if (c + stride * (kUnroll - 1) < chunks) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) wv[u] = __ldcs(wrow + c + stride * u);
      }
    }
    for (; c < chunks; c += stride) {
      const uint4 v = __ldcs(wrow + c);
#pragma unroll
      for (int m = 0; m < M; ++m) fma8<T>(acc[m], v, __ldg(reinterpret_cast<const uint4*>(x + m * ldx) + c));
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float v = warp_sum(acc[m]);
    if (KSPLIT == 1) {
      if (active && lane == 0) y[m * ldy + col] = from_float<Y>(v);
    } else if (lane == 0) {
      part_s[warp][m] = v;
    }
  }
  if constexpr (KSPLIT > 1) {
    __syncthreads();
    if (active && part == 0 && lane < M) {
      float v = 0.f;
#pragma unroll
      for (int p = 0; p < KSPLIT; ++p) v += part_s[warp + p][lane];
      y[lane * ldy + col] = from_float<Y>(v);
    }
  }
}

template <class T, class Y, int M>
cudaError_t launch_rows(const gemm_args& a, cudaStream_t stream) {
  const int64_t ldx = a.ldx ? a.ldx : a.k, ldy = a.ldy ? a.ldy : a.n;
  auto* y = static_cast<Y*>(a.y);
  auto* x = static_cast<const T*>(a.x);
  auto* w = static_cast<const T*>(a.w);
  // Enough warps for about one wave on an H100 (132 SMs x 64 warps): narrow products split K.
  // Programmatic launch: the first weight loads overlap the previous kernel (see the kernel).
  const bool pdl = a.programmatic_launch;
  auto blocks = [&](int cols) { return dim3(static_cast<unsigned>((a.n + cols - 1) / cols)); };
  if (a.n <= 2112)
    return launch_programmatic(pdl, skinny_gemm_kernel<T, Y, M, 4>, blocks(kWarps / 4), dim3(kWarps * 32), stream, y, x, w,
                               a.n, a.k, ldx, ldy);
  if (a.n <= 4224)
    return launch_programmatic(pdl, skinny_gemm_kernel<T, Y, M, 2>, blocks(kWarps / 2), dim3(kWarps * 32), stream, y, x, w,
                               a.n, a.k, ldx, ldy);
  return launch_programmatic(pdl, skinny_gemm_kernel<T, Y, M, 1>, blocks(kWarps), dim3(kWarps * 32), stream, y, x, w,
                               a.n, a.k, ldx, ldy);
}

template <class T, class Y>
cudaError_t dispatch_rows(const gemm_args& a, cudaStream_t stream) {
  switch (a.m) {
    case 1: return launch_rows<T, Y, 1>(a, stream);
    case 2: return launch_rows<T, Y, 2>(a, stream);
    case 3: return launch_rows<T, Y, 3>(a, stream);
    case 4: return launch_rows<T, Y, 4>(a, stream);
    case 5: return launch_rows<T, Y, 5>(a, stream);
    case 6: return launch_rows<T, Y, 6>(a, stream);
    case 7: return launch_rows<T, Y, 7>(a, stream);
    case 8: return launch_rows<T, Y, 8>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

bool skinny_gemm_supported(const gemm_args& a) {
  const int64_t ldx = a.ldx ? a.ldx : a.k;
  return a.m >= 1 && a.m <= kSkinnyGemmMaxRows && a.n > 0 && a.k > 0 && a.k % 8 == 0 && ldx % 8 == 0 &&
         a.n < (int64_t{1} << 31) / kWarps * kWarps && a.alpha == 1.f && a.beta == 0.f && detail::aligned16(a.x) &&
         detail::aligned16(a.w) && a.y != nullptr;
}

cudaError_t launch_skinny_gemm(const gemm_args& a, cudaStream_t stream) {
  if (!skinny_gemm_supported(a)) return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    return a.y_float32 ? dispatch_rows<T, float>(a, stream) : dispatch_rows<T, T>(a, stream);
  });
}

}  // namespace troupe
