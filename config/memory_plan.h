// The memory plan (design.md §1): per device rank, weights, then the runtime reserve, then the KV
// cache from what remains, the minimum over tensor-parallel ranks. A pure function of the model
// shape, the options and each device's free memory, so `troupe plan` can print it before anything
// starts and the executors allocate exactly what it says.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/error.h"
#include "config/options.h"

namespace troupe {

// The numbers of a model the plan needs (filled from runtime's model_config by the caller).
struct plan_model_shape {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  // The bytes the backend really holds for the weights (the CPU keeps GGUF block formats and bf16
  // as stored): when set, a --tp 1 plan counts exactly this instead of the dtype formula.
  uint64_t held_weight_bytes = 0;
  std::string held_weight_formats;  // e.g. "Q5_0, Q4_K, Q6_K, Q8_0 as stored", for the table
  int64_t extra_norm_floats_per_layer = 0;  // Gemma 3's post-norms and q/k norms
  int64_t num_local_layers = 0;     // layers attending over a sliding window (Gemma 3)
  int64_t sliding_window = 0;
};

struct device_memory {
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;  // free before troupe allocates anything
};

struct reserve_breakdown {
  uint64_t activations = 0;  // hidden/qkv/attn/MLP buffers for max_prefill_token_num tokens
  uint64_t logits = 0;       // float32 [max_batch_size, vocab]
  uint64_t sampling = 0;     // float32 probs + int32 indices [max_batch_size, vocab]
  uint64_t block_tables = 0; // int32 [max_batch_size, blocks per session]
  uint64_t workspace = 0;    // cuBLAS workspace, NCCL buffers, CUDA-graph pools (device only)
  uint64_t total() const { return activations + logits + sampling + block_tables + workspace; }
};

struct rank_plan {
  int32_t rank = 0;
  device_memory device;
  uint64_t weights_bytes = 0;
  reserve_breakdown reserve;
  uint64_t reserve_bytes = 0;
  uint64_t available_for_kv = 0;  // free - weights - reserve
  uint64_t kv_bytes_wanted = 0;   // what this rank alone would take
  uint64_t kv_bytes = 0;          // what it takes: num_blocks * block_bytes (the min over ranks)
  uint64_t free_after_bytes = 0;  // free - weights - reserve - kv
};

struct memory_plan {
  std::string device = "cpu";
  std::string dtype;              // runtime dtype of weights and activations
  std::string kv_dtype;
  int32_t tp = 1;
  std::string kv_rule;            // "ratio 0.80 of remaining" | "1000 blocks" | "kv-cache-memory 20 GiB" |
                                  // "cpu default: ..." (which bound of the CPU default applied)
  uint64_t block_bytes = 0;       // per rank
  int64_t block_seq_len = 0;
  int64_t num_blocks = 0;
  int64_t token_capacity = 0;     // num_blocks * block_seq_len
  int64_t session_len = 0;
  int64_t max_full_sessions = 0;  // how many session_len sequences fit at once
  int64_t num_session_cache_blocks = 0;  // blocks conversations may keep pinned (--session-cache-fraction)
  int32_t max_batch_size = 0;
  int32_t max_prefill_token_num = 0;
  int32_t max_concurrent_requests = 0;
  std::vector<rank_plan> ranks;
  std::vector<std::string> warnings;
  std::string weights_rule;       // how weights_bytes was counted
  uint64_t kv_bytes_per_token = 0;  // per rank, every layer
  int64_t num_local_layers = 0;     // of which attend over a window of sliding_window tokens
  int64_t sliding_window = 0;
};

// Bytes per element of a dtype name (float32 4, bfloat16/float16 2); 0 if unknown.
uint64_t dtype_bytes(const std::string& dtype);

// Exact bytes of one rank's weights in `dtype` after sharding over `tp` ranks (q/k/v/o heads and
// MLP columns split; KV heads replicated when fewer than ranks; embeddings, LM head and norms
// replicated).
uint64_t weight_bytes_per_rank(const plan_model_shape& m, const std::string& dtype, int32_t tp);

// The runtime reserve of one rank (documented formula, see memory_plan.cpp).
reserve_breakdown reserve_per_rank(const plan_model_shape& m, const std::string& dtype,
                                   const engine_options& opts, int64_t session_len, bool on_gpu);

// The KV cache when neither --cache-max-entry-count nor --kv-cache-memory is given: on a GPU the
// ratio 0.8; on the CPU min(4 GiB over all ranks, what max_concurrent_requests full session_len
// sequences need), at least one full sequence, at most the ratio 0.8 (the plan's kv_rule says which).
constexpr double kDefaultKvRatio = 0.8;
constexpr uint64_t kCpuDefaultKvBytes = 4ull << 30;

// Makes the plan. `devices` holds one entry per tp rank. Errors carry the numbers and the knob
// to turn: weights do not fit, nothing left for KV, not even one session_len sequence fits.
result<memory_plan> make_memory_plan(const plan_model_shape& m, const engine_options& opts,
                                     const std::string& dtype, const std::vector<device_memory>& devices);

// A table a person can read; and the JSON form (`troupe plan --json`).
std::string format_memory_plan(const memory_plan& plan);
std::string memory_plan_json(const memory_plan& plan);

// "80GiB", "20 GB", "512MiB", "1073741824" -> bytes.
result<uint64_t> parse_byte_size(const std::string& text);
std::string format_bytes(uint64_t bytes);  // "15.0 GiB"

}  // namespace troupe
