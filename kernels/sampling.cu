// Penalty and sampling kernels (see sampling.h for the semantics).
#include <curand_philox4x32_x.h>

#include "kernels/common.cuh"
#include "kernels/sampling.h"

namespace troupe {
namespace {

using namespace detail;

constexpr int kThreads = 1024;
constexpr int32_t kPromptFlag = 1 << 30;

__global__ void __launch_bounds__(kThreads) apply_penalties_kernel(float* logits, const sampling_row* rows,
                                                                   const int32_t* history, int32_t* counts,
                                                                   int64_t vocab) {
  const sampling_row r = rows[blockIdx.x];
  if (r.repetition_penalty == 1.f && r.presence_penalty == 0.f && r.frequency_penalty == 0.f) return;
  float* row = logits + blockIdx.x * vocab;
  int32_t* cnt = counts + blockIdx.x * vocab;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) cnt[i] = 0;
  __syncthreads();
  for (int32_t i = r.output_begin + threadIdx.x; i < r.output_end; i += blockDim.x) {
    const int32_t t = history[i];
    if (t >= 0 && t < vocab) atomicAdd(&cnt[t], 1);
  }
  for (int32_t i = r.prompt_begin + threadIdx.x; i < r.prompt_end; i += blockDim.x) {
    const int32_t t = history[i];
    if (t >= 0 && t < vocab) atomicOr(&cnt[t], kPromptFlag);
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const int32_t c = cnt[i];
    if (c == 0) continue;
    const int32_t n_out = c & (kPromptFlag - 1);
    float l = row[i];
    if (r.repetition_penalty != 1.f) l = l > 0.f ? l / r.repetition_penalty : l * r.repetition_penalty;
    l -= r.frequency_penalty * static_cast<float>(n_out) + (n_out > 0 ? r.presence_penalty : 0.f);
    row[i] = l;
  }
}

// Largest key T with W(key >= T, key >= min_key) >= target, W summing 1 (counts) or p (mass).
__device__ uint32_t radix_select(const float* p, int64_t n, uint32_t min_key, bool mass, float target,
                                 float* hist, uint32_t* digit_s, float* above_s) {
  uint32_t prefix = 0, mask = 0;
  if (threadIdx.x == 0) *above_s = 0.f;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0.f;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const float v = p[i];
      const uint32_t key = __float_as_uint(v);
      if (key >= min_key && (key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], mass ? v : 1.f);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      float cum = *above_s;
      uint32_t digit = 0;
      for (int b = 255; b >= 0; --b) {
        if (cum + hist[b] >= target) {
          digit = static_cast<uint32_t>(b);
          break;
        }
        cum += hist[b];
      }
      *above_s = cum;
      *digit_s = digit;
    }
    __syncthreads();
    prefix |= *digit_s << shift;
    mask |= 255u << shift;
    __syncthreads();
  }
  return prefix;
}

__device__ __forceinline__ float uniform_01(uint64_t seed, uint64_t step) {
  const uint4 ctr = make_uint4(static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), 0u, 0u);
  const uint2 key = make_uint2(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const uint4 r = curand_Philox4x32_10(ctr, key);
  return (static_cast<float>(r.x >> 8) + 1.f) * (1.f / 16777216.f);  // (0, 1]
}

__global__ void __launch_bounds__(kThreads) sample_kernel(float* logits, const sampling_row* rows, int64_t vocab,
                                                          int32_t* out_tokens) {
  __shared__ float scratch[32];
  __shared__ float hist[256];
  __shared__ float scan[kThreads / 32];
  __shared__ uint32_t digit_s;
  __shared__ float above_s;
  __shared__ int32_t pick_s;
  __shared__ float bv_s[32];
  __shared__ int32_t bi_s[32];
  const sampling_row r = rows[blockIdx.x];
  float* row = logits + blockIdx.x * vocab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  // Argmax (lowest id on ties): the greedy answer and the fallback of the draw.
  float bv = -INFINITY;
  int32_t bi = INT32_MAX;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
    if (row[i] > bv) bv = row[i], bi = static_cast<int32_t>(i);
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
  }
  if (lane == 0) bv_s[warp] = bv, bi_s[warp] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w)
      if (bv_s[w] > bv_s[0] || (bv_s[w] == bv_s[0] && bi_s[w] < bi_s[0])) bv_s[0] = bv_s[w], bi_s[0] = bi_s[w];
    pick_s = -1;
  }
  __syncthreads();
  const int32_t argmax = bi_s[0] == INT32_MAX ? 0 : bi_s[0];
  if (r.temperature <= 0.f) {
    if (threadIdx.x == 0) out_tokens[blockIdx.x] = argmax;
    return;
  }
  const float mx = bv_s[0];
  const float inv_t = 1.f / r.temperature;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) row[i] = expf((row[i] - mx) * inv_t);
  __syncthreads();

  uint32_t thr = 0;
  if (r.top_k > 0 && r.top_k < vocab)
    thr = radix_select(row, vocab, 0u, false, static_cast<float>(r.top_k), hist, &digit_s, &above_s);
  if (r.top_p < 1.f) {
    float kept = 0.f;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
      if (__float_as_uint(row[i]) >= thr) kept += row[i];
    kept = block_sum(kept, scratch);
    const uint32_t tp = radix_select(row, vocab, thr, true, r.top_p * kept, hist, &digit_s, &above_s);
    thr = max(thr, tp);
  }
  if (r.min_p > 0.f) thr = max(thr, __float_as_uint(fminf(r.min_p, 1.f)));

  // Draw: thread t owns ids [t * chunk, (t + 1) * chunk); a block scan of kept mass finds the owner.
  const int64_t chunk = (vocab + blockDim.x - 1) / blockDim.x;
  const int64_t lo = threadIdx.x * chunk, hi = min(vocab, lo + chunk);
  float local = 0.f;
  for (int64_t i = lo; i < hi; ++i)
    if (__float_as_uint(row[i]) >= thr) local += row[i];
  float incl = local;  // inclusive scan within the warp
  for (int o = 1; o < 32; o <<= 1) {
    const float n = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += n;
  }
  if (lane == 31) scan[warp] = incl;
  __syncthreads();
  if (threadIdx.x == 0) {
    float run = 0.f;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) {
      const float t = scan[w];
      scan[w] = run;
      run += t;
    }
    above_s = run;  // total kept mass
  }
  __syncthreads();
  const float prefix = scan[warp] + incl - local;
  const float target = uniform_01(r.seed, r.step) * above_s;
  if (local > 0.f && prefix < target && target - prefix <= local) {
    float acc = 0.f;
    int32_t pick = -1;
    for (int64_t i = lo; i < hi; ++i) {
      if (__float_as_uint(row[i]) < thr) continue;
      acc += row[i];
      pick = static_cast<int32_t>(i);
      if (acc >= target - prefix) break;
    }
    atomicMax(&pick_s, pick);
  }
  __syncthreads();
  if (threadIdx.x == 0) out_tokens[blockIdx.x] = pick_s >= 0 ? pick_s : argmax;
}

}  // namespace

cudaError_t launch_apply_penalties(const apply_penalties_args& a, cudaStream_t stream) {
  if (a.num_rows == 0) return cudaSuccess;
  if (a.num_rows < 0 || a.vocab <= 0 || a.vocab >= (int64_t{1} << 30) || !a.counts) return cudaErrorInvalidValue;
  apply_penalties_kernel<<<a.num_rows, kThreads, 0, stream>>>(a.logits, a.rows, a.history, a.counts, a.vocab);
  return cudaGetLastError();
}

cudaError_t launch_sample(const sample_args& a, cudaStream_t stream) {
  if (a.num_rows == 0) return cudaSuccess;
  if (a.num_rows < 0 || a.vocab <= 0 || a.vocab >= (int64_t{1} << 30)) return cudaErrorInvalidValue;
  sample_kernel<<<a.num_rows, kThreads, 0, stream>>>(a.logits, a.rows, a.vocab, a.out_tokens);
  return cudaGetLastError();
}

}  // namespace troupe
