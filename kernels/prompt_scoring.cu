// Prompt scoring kernel: one CTA per logits row (see prompt_scoring.h).
#include <cfloat>

#include "kernels/common.cuh"
#include "kernels/prompt_scoring.h"

namespace troupe {
namespace {

using namespace detail;

constexpr int kThreads = 256;
constexpr int kMaxK = 32;

// (logit, id) is better than (l2, id2): higher logit, then lower id.
__device__ __forceinline__ bool better(float l, int32_t id, float l2, int32_t id2) {
  return l > l2 || (l == l2 && id < id2);
}

// Design note: max and sum of exponentials in two block reductions give the log-sum-exp; the top k
// are k rounds of a block-wide argmax that skips the ids already chosen (k <= 32, so the rescans
// cost k passes over one row that stays in L2).
__global__ void __launch_bounds__(kThreads) score_rows_kernel(score_rows_args a) {
  pdl_wait();
  __shared__ float scratch[32];
  __shared__ float best_l[kThreads / 32];
  __shared__ int32_t best_id[kThreads / 32];
  __shared__ int32_t chosen[kMaxK];
  const float* row = a.logits + static_cast<int64_t>(blockIdx.x) * a.vocab;
  float mx = -FLT_MAX;
  for (int64_t i = threadIdx.x; i < a.vocab; i += blockDim.x) mx = fmaxf(mx, row[i]);
  mx = block_max(mx, scratch);
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < a.vocab; i += blockDim.x) sum += __expf(row[i] - mx);
  sum = block_sum(sum, scratch);
  const float lse = mx + logf(sum);
  if (threadIdx.x == 0) a.target_logprob[blockIdx.x] = row[a.targets[blockIdx.x]] - lse;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int r = 0; r < a.k; ++r) {
    float bl = -FLT_MAX;
    int32_t bid = INT32_MAX;
    for (int64_t i = threadIdx.x; i < a.vocab; i += blockDim.x) {
      const int32_t id = static_cast<int32_t>(i);
      bool taken = false;
      for (int c = 0; c < r; ++c) taken |= chosen[c] == id;
      if (!taken && better(row[i], id, bl, bid)) bl = row[i], bid = id;
    }
    for (int off = 16; off > 0; off >>= 1) {
      const float ol = __shfl_down_sync(0xffffffffu, bl, off);
      const int32_t oid = __shfl_down_sync(0xffffffffu, bid, off);
      if (better(ol, oid, bl, bid)) bl = ol, bid = oid;
    }
    if (lane == 0) best_l[warp] = bl, best_id[warp] = bid;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kThreads / 32; ++w)
        if (better(best_l[w], best_id[w], best_l[0], best_id[0])) best_l[0] = best_l[w], best_id[0] = best_id[w];
      chosen[r] = best_id[0];
      a.top_ids[static_cast<int64_t>(blockIdx.x) * a.k + r] = best_id[0];
      a.top_logprobs[static_cast<int64_t>(blockIdx.x) * a.k + r] = best_l[0] - lse;
    }
    __syncthreads();
  }
}

}  // namespace

cudaError_t launch_score_rows(const score_rows_args& a, cudaStream_t stream) {
  if (a.num_rows <= 0) return cudaSuccess;
  if (a.k < 0 || a.k > kMaxK || a.vocab <= 0 || a.vocab > INT32_MAX) return cudaErrorInvalidValue;
  score_rows_kernel<<<a.num_rows, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace troupe
