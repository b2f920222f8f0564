// The sampling kernel: runtime/sampling_math.h's row pipeline over a CUDA block (see sampling.h).
#include <cstdint>

#include "kernels/sampling.h"

namespace troupe {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

// The "block" sampling_math.h is written against: a CUDA block of kThreads threads. Every
// block-wide call is reached by all threads and returns the same value to each.
struct cuda_block {
  float* f;                // shared [kWarps]
  double* d;               // shared [kWarps]
  smath::best_pair* bp;    // shared [kWarps]
  int32_t* n;              // shared [kWarps]

  __device__ int tid() const { return static_cast<int>(threadIdx.x); }
  __device__ int size() const { return kThreads; }
  __device__ void sync() { __syncthreads(); }

  __device__ float max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) f[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = f[0];
    for (int w = 1; w < kWarps; ++w) r = fmaxf(r, f[w]);
    __syncthreads();
    return r;
  }
  __device__ double sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) d[threadIdx.x >> 5] = v;
    __syncthreads();
    double r = 0.0;
    for (int w = 0; w < kWarps; ++w) r += d[w];  // same order in every thread: the same value
    __syncthreads();
    return r;
  }
  __device__ int32_t max_int(int32_t v) {
    for (int o = 16; o > 0; o >>= 1) v = ::max(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) n[threadIdx.x >> 5] = v;
    __syncthreads();
    int32_t r = n[0];
    for (int w = 1; w < kWarps; ++w) r = ::max(r, n[w]);
    __syncthreads();
    return r;
  }
  __device__ smath::best_pair best(smath::best_pair p) {
    for (int o = 16; o > 0; o >>= 1) {
      smath::best_pair q;
      q.value = __shfl_xor_sync(0xffffffffu, p.value, o);
      q.id = __shfl_xor_sync(0xffffffffu, p.id, o);
      p = smath::best_of(p, q);
    }
    if ((threadIdx.x & 31) == 0) bp[threadIdx.x >> 5] = p;
    __syncthreads();
    smath::best_pair r = bp[0];
    for (int w = 1; w < kWarps; ++w) r = smath::best_of(r, bp[w]);
    __syncthreads();
    return r;
  }
  __device__ void add(double* p, double v) { atomicAdd(p, v); }
  __device__ void set_min(int32_t* p, int32_t v) { atomicMin(p, v); }
  // Exclusive prefix over threads in tid order (the id-ordered scans); *total: the block's sum.
  __device__ double exclusive_scan(double v, double* total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double incl = v;
    for (int o = 1; o < 32; o <<= 1) {
      const double x = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += x;
    }
    double excl = __shfl_up_sync(0xffffffffu, incl, 1);
    if (lane == 0) excl = 0.0;
    if (lane == 31) d[warp] = incl;
    __syncthreads();
    double before = 0.0, all = 0.0;
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) before += d[w];
      all += d[w];
    }
    __syncthreads();
    *total = all;
    return before + excl;
  }
};

__global__ void __launch_bounds__(kThreads) sample_rows_kernel(float* logits, const int32_t* row_of,
                                                               const smath::row_params* params,
                                                               smath::row_edit* edits, smath::row_result* out,
                                                               int64_t vocab) {
  __shared__ float f[kWarps];
  __shared__ double d[kWarps];
  __shared__ int32_t n[kWarps];
  __shared__ smath::row_shared sh;
  // Raw storage: __shared__ variables take no initializers, and these types have some.
  __shared__ alignas(16) unsigned char bp_raw[kWarps * sizeof(smath::best_pair)];
  __shared__ alignas(16) unsigned char res_raw[sizeof(smath::row_result)];
  auto* bp = reinterpret_cast<smath::best_pair*>(bp_raw);
  auto& res = *reinterpret_cast<smath::row_result*>(res_raw);
  const smath::row_params p = params[blockIdx.x];
  if (p.skip) return;
  cuda_block b{f, d, bp, n};
  float* row = logits + static_cast<int64_t>(row_of ? row_of[blockIdx.x] : blockIdx.x) * vocab;
  smath::process(b, row, vocab, p, edits, sh, res);
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = res;
}

}  // namespace

cudaError_t launch_sample_rows(const sample_rows_args& a, cudaStream_t stream) {
  if (a.num_rows == 0) return cudaSuccess;
  if (a.num_rows < 0 || a.vocab <= 0 || a.vocab >= (int64_t{1} << 30) || !a.logits || !a.params || !a.out)
    return cudaErrorInvalidValue;
  sample_rows_kernel<<<a.num_rows, kThreads, 0, stream>>>(a.logits, a.row_of, a.params, a.edits, a.out, a.vocab);
  return cudaGetLastError();
}

}  // namespace troupe
