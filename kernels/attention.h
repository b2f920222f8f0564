// Paged attention over the KV cache for a mixed step: prefill chunks (causal, starting at any
// start_pos) and decode tokens in one launch; GQA/MQA; head_dim 16, 32, 48, 64, 96, 128, 256. Long
// contexts with few CTAs are split over the key axis (split-K) and merged by a reduce kernel.
#pragma once

#include <cstdint>
#include <vector>

#include <cuda_runtime_api.h>

#include "kernels/kernel_types.h"
#include "kernels/kv_cache.h"

namespace troupe {

// One sequence of the step, as the attention kernel sees it (device array of these).
struct attention_seq {
  int32_t q_begin = 0;    // first row of this sequence's new tokens in q and out
  int32_t q_len = 0;      // number of new tokens (1 for decode)
  int32_t start_pos = 0;  // tokens of this sequence already cached before the step; new token i
                          // sits at position start_pos + i and sees keys [0, start_pos + i]
  int32_t table_row = 0;  // its row of block_tables when paged_attention_args::tables_by_row
};

// One CTA's tile of queries: tokens [q_offset, q_offset + tile_tokens) of sequence `seq`.
struct attention_work {
  int32_t seq = 0;
  int32_t q_offset = 0;
};

// How a step's attention is cut into CTAs (made on the host, see make_attention_schedule).
struct attention_schedule {
  int32_t heads_per_cta = 1;  // q heads of one KV group per CTA (<= 16)
  int32_t head_chunks = 1;    // CTAs per KV group along heads (group / heads_per_cta)
  int32_t tile_tokens = 1;    // query tokens per CTA (16 rows = tile_tokens * heads_per_cta)
  int32_t num_splits = 1;     // key-axis splits; > 1 needs the partial buffers
  int32_t split_len = 0;      // keys per split (a multiple of 64)
  std::vector<attention_work> work;  // [num_work]
};

struct attention_schedule_options {
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t num_sms = 132;            // the device's multiprocessors (splits fill them)
  int32_t max_splits = 1;           // 1 disables split-K
  int64_t partial_capacity = 0;     // (token, head, split) entries the partial buffers hold
};

void make_attention_schedule(const attention_seq* seqs, int32_t num_seqs, const attention_schedule_options& o,
                             attention_schedule& out);

struct paged_attention_args {
  void* out = nullptr;        // [num_tokens, num_heads * head_dim]
  const void* q = nullptr;    // [num_tokens, q_stride]; head h at [h * head_dim, (h + 1) * head_dim)
  int64_t q_stride = 0;       // elements between tokens of q (the fused qkv row width)
  paged_kv_layout cache;
  int32_t layer = 0;
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq] block ids (or [rows, ...])
  int32_t max_blocks_per_seq = 0;
  bool tables_by_row = false;  // sequence s reads row seqs[s].table_row (a persistent table), not row s
  const attention_seq* seqs = nullptr;    // device [num_seqs]
  const attention_work* work = nullptr;   // device [num_work], from the schedule
  int32_t num_work = 0;
  int64_t num_tokens = 0;
  int32_t num_heads = 0;
  int32_t heads_per_cta = 1, head_chunks = 1, tile_tokens = 1, num_splits = 1, split_len = 0;  // schedule
  float* partial_o = nullptr;   // [num_tokens, num_heads, num_splits, head_dim] if num_splits > 1
  float* partial_ml = nullptr;  // [num_tokens, num_heads, num_splits, 2] (running max log2, sum)
  const int32_t* split_len_dev = nullptr;  // device scalar that overrides split_len when set: a
                                           // CUDA graph fixes num_splits, each step picks the keys per split
  float scale = 0.f;            // softmax scale; 0 means 1/sqrt(head_dim)
  int32_t window = 0;           // sliding window: a token at position p sees keys (p - window, p]; 0 = all
  kernel_dtype dtype = kernel_dtype::bf16;

  void set_schedule(const attention_schedule& s) {
    heads_per_cta = s.heads_per_cta;
    head_chunks = s.head_chunks;
    tile_tokens = s.tile_tokens;
    num_splits = s.num_splits;
    split_len = s.split_len;
    num_work = static_cast<int32_t>(s.work.size());
  }
};

bool attention_head_dim_supported(int64_t head_dim);

cudaError_t launch_paged_attention(const paged_attention_args& a, cudaStream_t stream);

}  // namespace troupe
