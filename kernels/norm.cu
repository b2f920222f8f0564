// RMSNorm kernels: one CTA per row, 16-byte vectors when the row allows it, float32 math.
#include "kernels/common.cuh"
#include "kernels/norm.h"

namespace troupe {
namespace {

using namespace detail;

constexpr int kThreads = 256;

// Design note: pass 1 reads the row (and for the fused form writes residual + x back, rounded to T)
// while summing squares; a block reduction separates it from pass 2, which rereads the values this
// thread wrote itself and writes the normed output. So `out` may alias `x` or `in`.
// GEMMA: y = dtype(x̂ · (1 + w)) in float32 (Gemma3RMSNorm), else y = w · dtype(x̂) (Llama).
template <class T, int VEC, bool FUSED, bool GEMMA>
__global__ void __launch_bounds__(kThreads) rms_norm_kernel(T* __restrict__ out, T* residual, const T* x,
                                                            const T* __restrict__ weight, int64_t hidden,
                                                            float eps) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int64_t nvec = hidden / VEC;
  T* res_row = residual ? residual + row * hidden : nullptr;
  const T* x_row = x + row * hidden;
  T* out_row = out + row * hidden;
  // Rows of up to kKeep * 8 * kThreads elements (8192 with 16-byte vectors) stay in registers
  // between the passes; longer rows are reread (from L2) in pass 2.
  constexpr int kKeep = 4;
  float keep[kKeep][VEC];
  float ss = 0.f;
  int it = 0;
  for (int64_t v = threadIdx.x; v < nvec; v += blockDim.x, ++it) {
    float a[VEC];
    if constexpr (VEC == 8) {
      load8(x_row + v * 8, a);
      if constexpr (FUSED) {
        float r[8];
        load8(res_row + v * 8, r);
#pragma unroll
        for (int i = 0; i < 8; ++i) a[i] = to_float(from_float<T>(a[i] + r[i]));
        store8(res_row + v * 8, a);
      }
    } else {
      a[0] = to_float(x_row[v]);
      if constexpr (FUSED) {
        const T s = from_float<T>(a[0] + to_float(res_row[v]));
        res_row[v] = s;
        a[0] = to_float(s);
      }
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) ss += a[i] * a[i];
#pragma unroll
    for (int k = 0; k < kKeep; ++k)
      if (k == it)
#pragma unroll
        for (int i = 0; i < VEC; ++i) keep[k][i] = a[i];
  }
  ss = block_sum(ss, scratch);
  const float inv = rsqrtf(ss / static_cast<float>(hidden) + eps);
  const T* src = FUSED ? res_row : x_row;
  it = 0;
  for (int64_t v = threadIdx.x; v < nvec; v += blockDim.x, ++it) {
    if constexpr (VEC == 8) {
      float a[8], w[8];
      if (it < kKeep) {
#pragma unroll
        for (int k = 0; k < kKeep; ++k)
          if (k == it)
#pragma unroll
            for (int i = 0; i < 8; ++i) a[i] = keep[k][i];
      } else {
        load8(src + v * 8, a);
      }
      load8(weight + v * 8, w);
#pragma unroll
      for (int i = 0; i < 8; ++i) a[i] = GEMMA ? a[i] * inv * (1.f + w[i]) : w[i] * to_float(from_float<T>(a[i] * inv));
      store8(out_row + v * 8, a);
    } else {
      const float xn = to_float(src[v]) * inv, w = to_float(weight[v]);
      out_row[v] = from_float<T>(GEMMA ? xn * (1.f + w) : w * to_float(from_float<T>(xn)));
    }
  }
}

template <class T, bool FUSED, bool GEMMA>
cudaError_t launch(void* out, void* residual, const void* x, const void* w, int64_t rows, int64_t hidden,
                   float eps, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  const bool vec = hidden % 8 == 0 && aligned16(out) && aligned16(x) && aligned16(w) &&
                   (!FUSED || aligned16(residual));
  auto* o = static_cast<T*>(out);
  auto* r = static_cast<T*>(residual);
  auto* xi = static_cast<const T*>(x);
  auto* wi = static_cast<const T*>(w);
  const dim3 grid(static_cast<unsigned>(rows));
  return vec ? launch_programmatic(true, rms_norm_kernel<T, 8, FUSED, GEMMA>, grid, dim3(kThreads), stream, o, r, xi, wi,
                                   hidden, eps)
             : launch_programmatic(true, rms_norm_kernel<T, 1, FUSED, GEMMA>, grid, dim3(kThreads), stream, o, r, xi, wi,
                                   hidden, eps);
}

template <class T, bool FUSED>
cudaError_t launch_form(bool gemma, void* out, void* residual, const void* x, const void* w, int64_t rows,
                        int64_t hidden, float eps, cudaStream_t stream) {
  return gemma ? launch<T, FUSED, true>(out, residual, x, w, rows, hidden, eps, stream)
               : launch<T, FUSED, false>(out, residual, x, w, rows, hidden, eps, stream);
}

}  // namespace

cudaError_t launch_rms_norm(const rms_norm_args& a, cudaStream_t stream) {
  if (a.num_rows < 0 || a.hidden <= 0 || a.num_rows > INT32_MAX) return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    return launch_form<T, false>(a.gemma_form, a.out, nullptr, a.in, a.weight, a.num_rows, a.hidden, a.eps, stream);
  });
}

cudaError_t launch_fused_add_rms_norm(const fused_add_rms_norm_args& a, cudaStream_t stream) {
  if (a.num_rows < 0 || a.hidden <= 0 || a.num_rows > INT32_MAX) return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    return launch_form<T, true>(a.gemma_form, a.out, a.residual, a.x, a.weight, a.num_rows, a.hidden, a.eps, stream);
  });
}

}  // namespace troupe
