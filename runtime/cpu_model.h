// The CPU forward pass of a Llama-family decoder (Llama, Mistral, Qwen2, SmolLM2) and Gemma 3: a model_backend
// owning the weights (float32, bf16, f16 or GGML block formats), a float32 or float16 paged KV pool
// and a thread pool. It makes the server usable without a GPU, and its logits are batch-invariant
// (see forward()).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "config/error.h"
#include "runtime/cpu_comm.h"
#include "runtime/cpu_thread_pool.h"
#include "runtime/host_buffer.h"
#include "runtime/model_backend.h"
#include "runtime/model_weights.h"

namespace troupe {

struct cpu_model_options {
  int64_t num_kv_blocks = 0;   // blocks in the KV pool
  int64_t block_seq_len = 16;  // tokens per block (cache_block_seq_len)
  int num_threads = 0;         // threads for matmuls and attention, the caller included; 0 = all cores
  // The KV cache's element type: float32 or float16 (half the bytes; attention reads it directly).
  weight_dtype kv_dtype = weight_dtype::f32;
  // Tensor parallelism: this model is rank `tp_rank` of comm->world() and holds that rank's shard
  // (weights and config from runtime/tensor_parallel.h). Null: a whole model, no collectives.
  std::shared_ptr<cpu_comm_group> comm;
  int32_t tp_rank = 0;
};

class cpu_model : public model_backend {
 public:
  // Checks the config against the weights and allocates the KV pool (errc::out_of_memory when it
  // cannot). `weights` must match `cfg` (load_model_weights / make_dummy_weights guarantee it).
  static result<std::unique_ptr<cpu_model>> create(model_config cfg, model_weights weights,
                                                   const cpu_model_options& opts);

  const model_config& config() const override { return cfg_; }
  int64_t num_kv_blocks() const override { return num_blocks_; }
  int64_t block_seq_len() const override { return block_seq_len_; }

  // Design note: one step runs the decoder over all new tokens of all sequences as one [T, hidden]
  // activation matrix. Per layer: RMSNorm, fused q/k/v matmul (+bias), rotary by each token's
  // position, K/V appended into each sequence's blocks, then attention per (token, head) over the
  // cached positions [0, pos] read through the block table (in tiles of up to kAttentionTileRows
  // tokens × one KV head's query heads, each tile reading the cache once: cpu_attention.h, with the
  // per-row arithmetic of paged_attention_row), o_proj, residual, RMSNorm, fused
  // gate/up, SiLU-and-mul, down, residual. Logits are computed only for the rows asked for.
  // Batch invariance: each row's matmuls reduce in a fixed order independent of T (cpu_matmul.h),
  // and attention for a token at position p always reduces over cached positions 0..p in order,
  // whether its K/V were written in this step or earlier, so a sequence's logits are bit-identical
  // whatever shares the step and however its prompt was chunked.
  // With tensor parallelism the o_proj and down_proj outputs are partial sums, all-reduced over the
  // ranks before the residual add; only rank 0 computes logits (the others return no rows).
  // One forward() at a time: concurrent calls (a restarted executor while the old one finishes)
  // are serialised.
  status forward(const step_batch& batch, step_logits& out) override;

  // KV block layout: [num_layers][2 (K, V)][num_kv_heads][block_seq_len][head_dim] of kv_dtype.
  int64_t block_floats() const { return block_stride_; }
  int64_t block_bytes() const { return block_stride_ * kv_elem_bytes(); }
  int64_t kv_pool_bytes() const { return num_blocks_ * block_bytes(); }
  weight_dtype kv_dtype() const { return kv_dtype_; }
  int num_threads() const { return pool_->num_threads(); }
  backend_memory memory() const override;

 private:
  cpu_model(model_config cfg, model_weights weights, const cpu_model_options& opts);
  status check_batch(const step_batch& batch) const;
  void prepare_tokens(const step_batch& batch);
  void attention_layer(const step_batch& batch, int64_t layer);
  void compute_logits(const step_batch& batch, step_logits& out);
  void score_prompt_rows(const step_batch& batch, step_logits& out);
  int64_t kv_elem_bytes() const { return kv_dtype_ == weight_dtype::f32 ? 4 : 2; }

  model_config cfg_;
  model_weights w_;
  int64_t num_blocks_ = 0;
  int64_t block_seq_len_ = 0;
  int64_t block_stride_ = 0;  // elements per block
  weight_dtype kv_dtype_ = weight_dtype::f32;
  host_buffer kv_;            // [num_blocks, num_layers, 2, num_kv_heads, block_seq_len, head_dim] of kv_dtype_
  std::vector<float> inv_freq_;  // [head_dim / 2]
  std::vector<float> inv_freq_local_;  // [head_dim / 2] local layers' rotary (Gemma 3); empty otherwise
  std::unique_ptr<cpu_thread_pool> pool_;
  std::shared_ptr<cpu_comm_group> comm_;
  int32_t tp_rank_ = 0;
  std::mutex forward_mu_;

  // Per-step workspaces, grown on demand (T = tokens in the step).
  std::vector<int32_t> tok_seq_;  // [T] index into batch.seqs
  std::vector<int32_t> tok_pos_;  // [T] absolute position
  std::vector<float> cos_, sin_;  // [T, head_dim / 2]
  std::vector<float> cos_local_, sin_local_;  // [T, head_dim / 2] with inv_freq_local_
  std::vector<float> x_;          // [T, hidden] residual stream
  std::vector<float> h_;          // [T, hidden] normed input / projection output
  std::vector<float> qkv_;        // [T, q_size + 2 * kv_size]
  std::vector<float> attn_;       // [T, q_size]
  std::vector<float> gate_up_;    // [T, 2 * intermediate]
  std::vector<float> act_;        // [T, intermediate]
  struct attn_item {              // one attention tile: rows [first_token, +num_rows) × heads [first_head, +num_heads)
    int32_t first_token, num_rows, first_head, num_heads;
  };
  std::vector<attn_item> attn_items_;  // [tiles × head groups] of the current layer
  // Attention scratch, allocated at create: [num_threads, attn_scratch_per_thread_] floats.
  std::vector<float> attn_scratch_;
  int64_t attn_scratch_per_thread_ = 0;
};

}  // namespace troupe
