// The paged KV cache layout and the kernel that appends new tokens' K and V into their blocks.
// One pool holds every layer: a block is the unit the block manager leases, so a block id
// addresses the same token slots in all layers.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/kernel_types.h"

#if defined(__CUDACC__)
#define TROUPE_HOST_DEVICE __host__ __device__
#else
#define TROUPE_HOST_DEVICE
#endif

namespace troupe {

// Design note: per block, [num_layers][2 (K, V)][num_kv_heads][block_seq_len][head_dim]. A
// (layer, K|V, head) slice of a block is contiguous (block_seq_len * head_dim elements), so an
// attention CTA for one KV head reads whole token rows of head_dim elements; block_bytes equals
// the plan's block_seq_len * layers * kv_heads * head_dim * 2 * dtype bytes.
struct paged_kv_layout {
  void* pool = nullptr;  // [num_blocks, num_layers, 2, num_kv_heads, block_seq_len, head_dim]
  int64_t num_blocks = 0;
  int32_t num_layers = 0;
  int32_t num_kv_heads = 0;
  int32_t block_seq_len = 0;
  int32_t head_dim = 0;

  TROUPE_HOST_DEVICE int64_t block_elements() const {
    return static_cast<int64_t>(num_layers) * 2 * num_kv_heads * block_seq_len * head_dim;
  }
  // Element offset of token `slot_in_block` of head `head` of K (kv = 0) or V (kv = 1).
  TROUPE_HOST_DEVICE int64_t offset(int64_t block, int32_t layer, int32_t kv, int32_t head,
                                    int32_t slot_in_block) const {
    return block * block_elements() +
           ((((static_cast<int64_t>(layer) * 2 + kv) * num_kv_heads + head) * block_seq_len + slot_in_block) *
            head_dim);
  }
};

inline uint64_t paged_kv_block_bytes(const paged_kv_layout& l, kernel_dtype dt) {
  return static_cast<uint64_t>(l.block_elements()) * kernel_dtype_bytes(dt);
}

struct append_kv_args {
  paged_kv_layout cache;
  int32_t layer = 0;
  const void* k = nullptr;      // [num_tokens, row_stride]: num_kv_heads * head_dim values at k
  const void* v = nullptr;      // [num_tokens, row_stride]: the same for v
  int64_t row_stride = 0;       // elements between tokens of k and v (the fused qkv row width)
  const int32_t* slots = nullptr;  // [num_tokens] block * block_seq_len + slot_in_block; < 0 = skip
  int64_t num_tokens = 0;
  kernel_dtype dtype = kernel_dtype::bf16;
};

cudaError_t launch_append_kv(const append_kv_args& a, cudaStream_t stream);

}  // namespace troupe
