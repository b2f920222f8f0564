// KV append kernel: one CTA per new token, copying every KV head of K and V into the token's slot.
#include "kernels/common.cuh"
#include "kernels/kv_cache.h"

namespace troupe {
namespace {

using namespace detail;

template <class T, int VEC>
__global__ void append_kv_kernel(paged_kv_layout cache, int32_t layer, const T* __restrict__ k,
                                 const T* __restrict__ v, int64_t row_stride, const int32_t* __restrict__ slots) {
  const int64_t tok = blockIdx.x;
  const int32_t slot = slots[tok];
  if (slot < 0) return;
  const int64_t block = slot / cache.block_seq_len;
  const int32_t in_block = slot % cache.block_seq_len;
  const int D = cache.head_dim;
  const int per_kv = cache.num_kv_heads * D / VEC;  // vectors per K (or V) row
  T* pool = static_cast<T*>(cache.pool);
  for (int w = threadIdx.x; w < 2 * per_kv; w += blockDim.x) {
    const int kv = w / per_kv;
    const int e = (w % per_kv) * VEC;
    const int head = e / D, d = e % D;
    const T* src = (kv ? v : k) + tok * row_stride + e;
    T* dst = pool + cache.offset(block, layer, kv, head, in_block) + d;
    if constexpr (VEC == 8)
      *reinterpret_cast<vec8*>(dst) = *reinterpret_cast<const vec8*>(src);
    else
      *dst = *src;
  }
}

}  // namespace

cudaError_t launch_append_kv(const append_kv_args& a, cudaStream_t stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  if (a.num_tokens < 0 || a.num_tokens > INT32_MAX || a.cache.head_dim <= 0 || a.cache.block_seq_len <= 0)
    return cudaErrorInvalidValue;
  return dispatch_dtype(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const bool vec = a.cache.head_dim % 8 == 0 && a.row_stride % 8 == 0 && aligned16(a.k) && aligned16(a.v) &&
                     aligned16(a.cache.pool);
    auto* k = static_cast<const T*>(a.k);
    auto* v = static_cast<const T*>(a.v);
    if (vec)
      append_kv_kernel<T, 8><<<a.num_tokens, 128, 0, stream>>>(a.cache, a.layer, k, v, a.row_stride, a.slots);
    else
      append_kv_kernel<T, 1><<<a.num_tokens, 128, 0, stream>>>(a.cache, a.layer, k, v, a.row_stride, a.slots);
    return cudaGetLastError();
  });
}

}  // namespace troupe
