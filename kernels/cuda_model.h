// The CUDA forward pass: a model_backend owning bf16/fp16 weights, the runtime reserve and the
// paged KV pool on one device, each one cudaMalloc made at construction from the memory plan.
// forward() allocates nothing: it stages the step's metadata into pinned memory, uploads it with
// one copy, runs embedding -> layers -> final norm -> LM head and copies the wanted logits back.
// Decode steps (one token per sequence) of up to max_graph_batch sequences replay a CUDA graph
// captured at start-up for the next captured batch size, the extra rows padded (see
// capture_decode_graphs); other steps launch their kernels one by one.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <cuda_runtime_api.h>

#include "config/error.h"
#include "config/memory_plan.h"
#include "config/options.h"
#include "kernels/attention.h"
#include "kernels/cublas_gemm.h"
#include "kernels/cuda_model_sampling.h"
#include "kernels/device_memory.h"
#include "kernels/kernel_types.h"
#include "kernels/kv_cache.h"
#include "runtime/model_backend.h"
#include "runtime/weight_source.h"

namespace troupe {

struct cuda_model_options {
  int32_t device = 0;
  kernel_dtype dtype = kernel_dtype::bf16;
  bool dummy_weights = false;     // --load-format dummy: random weights generated on the device
  uint64_t dummy_seed = 0;
  int32_t block_seq_len = 64;     // tokens per KV block
  int64_t num_kv_blocks = 0;      // from the plan; 0: kv_fraction of the memory left
  double kv_fraction = 0.9;       // only when num_kv_blocks == 0
  uint64_t reserve_bytes = 0;     // from the plan; 0: reserve_bytes_needed()
  int32_t max_batch_size = 128;   // sequences per step
  int32_t max_prefill_token_num = 2048;  // tokens per step = max(this, max_batch_size)
  int64_t session_len = 0;        // longest sequence; 0: max_position_embeddings
  int32_t max_splits = 16;        // split-K bound for decode attention
  bool warm_up = true;            // run a step at the largest shapes at start-up
  bool cuda_graphs = true;        // capture decode-step graphs at start-up (off: --enforce-eager)
  int32_t max_graph_batch = 256;  // largest decode batch replayed from a graph
  int32_t skinny_gemm_rows = 4;   // products of at most this many rows (<= 8) use the weight-streaming
                                  // kernel; 0: all cuBLAS
  bool programmatic_launch = true;  // skinny GEMMs overlap the previous kernel's tail (Hopper PDL)
  // Tensor parallelism: `cfg` and the weights are rank `tp_rank`'s shard (runtime/tensor_parallel.h)
  // and `nccl_comm` (an ncclComm_t from kernels/nccl_comm.h) all-reduces the o_proj and down_proj
  // outputs. Null: no collectives. Only rank 0 computes logits.
  void* nccl_comm = nullptr;
  int32_t tp_rank = 0;
};

class cuda_model final : public model_backend {
 public:
  // Uploads `weights` (ignored with dummy_weights) converted to the dtype. Fails with
  // out_of_memory (with the numbers) when weights + reserve + KV do not fit, device_error on CUDA
  // failures, not_found / invalid_argument on missing or misshapen tensors.
  static result<std::unique_ptr<cuda_model>> create(const model_config& cfg, const weight_source* weights,
                                                    const cuda_model_options& opts);

  // The options a plan implies (block size, blocks, reserve, batch limits, dtype).
  static cuda_model_options options_from_plan(const memory_plan& plan, const engine_options& engine);

  // Reserve bytes this backend carves (activations, logits, block tables, cuBLAS workspace,
  // metadata, split-K partials for max_splits); the planner's formula must not be smaller.
  static uint64_t reserve_bytes_needed(const model_config& cfg, const cuda_model_options& opts);

  ~cuda_model() override;

  const model_config& config() const override { return cfg_; }
  int64_t num_kv_blocks() const override { return kv_layout_.num_blocks; }
  int64_t block_seq_len() const override { return kv_layout_.block_seq_len; }
  status forward(const step_batch& batch, step_logits& out) override;
  // Serving (rank 0): the sampled sequences' rows are sampled on the device, and only tokens and
  // logprobs come back; rows the device does not serve (constraints) are copied into a pinned host
  // buffer and sampled there by the CPU sampler (cuda_model_sampling.cpp); steps that also want rows
  // back (tests) take the default path.
  status forward_sampled(const step_batch& batch, step_logits& rows, step_logits& out) override;
  // Rank 0 found room in the reserve for the device sampler's rows (else every row samples on the host).
  bool samples_on_device() const { return dsamp_ != nullptr; }
  backend_memory memory() const override { return {weights_bytes(), reserve_bytes(), kv_bytes()}; }

  const paged_kv_layout& kv_layout() const { return kv_layout_; }
  cudaStream_t stream() const { return stream_; }
  uint64_t weights_bytes() const { return weights_.capacity(); }
  uint64_t reserve_bytes() const { return reserve_.capacity(); }
  uint64_t kv_bytes() const { return kv_.capacity(); }
  // Decode batch sizes with a captured graph (ascending; empty when graphs are off) and the device
  // memory their instantiation took (measured with cudaMemGetInfo around the captures).
  std::vector<int32_t> graph_batch_sizes() const;
  uint64_t graph_bytes() const { return graph_bytes_; }

 private:
  struct layer_weights {
    void* input_norm = nullptr;  // [hidden]
    void* post_norm = nullptr;   // [hidden] before the MLP (Gemma: pre_feedforward_layernorm)
    void* attn_out_norm = nullptr;  // [hidden] on the attention output, or null (Gemma's sandwich norms)
    void* mlp_out_norm = nullptr;   // [hidden] on the MLP output, or null
    void* qkv = nullptr;         // [(Hq + 2 Hkv) * D, hidden]: q_proj | k_proj | v_proj rows
    void* qkv_bias = nullptr;    // [(Hq + 2 Hkv) * D] or null
    void* q_norm = nullptr;      // [D] or null (qk_norm: Qwen3)
    void* k_norm = nullptr;      // [D] or null
    void* o = nullptr;           // [hidden, Hq * D]
    void* gate_up = nullptr;     // [2 * inter, hidden]: gate_proj | up_proj rows
    void* down = nullptr;        // [hidden, inter]
  };
  struct buffers {  // activations for max_tokens_ rows, from the reserve
    void* residual = nullptr;  // [T, hidden]
    void* h = nullptr;         // [T, hidden] normed input / branch output
    void* qkv = nullptr;       // [T, (Hq + 2 Hkv) * D]
    void* attn = nullptr;      // [T, Hq * D]
    void* gate_up = nullptr;   // [T, 2 * inter]
    void* act = nullptr;       // [T, inter]
    float* logits = nullptr;   // [logit_rows_, vocab]
    float* inv_freq = nullptr; // [D / 2]
    float* inv_freq_local = nullptr;  // [D / 2] local (sliding) layers' rotary, or null (Gemma 3)
    float* partial_o = nullptr;   // [partial_capacity_, D]
    float* partial_ml = nullptr;  // [partial_capacity_, 2]
    int32_t* meta = nullptr;      // [meta_ints_] step metadata (see forward)
    void* cublas_ws = nullptr;
  };

  cuda_model() = default;
  status init(const model_config& cfg, const weight_source* weights, const cuda_model_options& opts);
  status allocate_weights(const weight_source* weights);
  status upload_tensor(const weight_source& src, const std::string& name, const std::vector<int64_t>& shape,
                       void* dst, float add);  // `add` joins every element before the dtype conversion
  status carve_reserve();
  status run_warm_up();
  status validate(const step_batch& batch) const;
  status run_layers(int64_t num_tokens, const int32_t* d_tokens, const int32_t* d_pos, const int32_t* d_slots,
                    const paged_attention_args& attn);
  status matmul(const gemm_args& g);             // skinny kernel or cuBLAS
  attention_schedule_options schedule_options() const;
  status all_reduce_hidden(int64_t num_tokens);  // sums buf_.h [T, hidden] over the TP ranks
  status softcap_logits(int64_t rows);           // final_logit_softcapping of buf_.logits [rows, vocab], if set
  status run_lm_head(const std::vector<int32_t>& rows, const int32_t* d_rows, step_logits& out);
  // cuda_model_sampling.cpp: start-up buffers, a step's device rows, and where logits rows go.
  status init_sampling();
  status stage_device_rows(const step_batch& batch);
  status deliver_logits(float* dst, int64_t r0, int64_t m, const int32_t* src_rows);
  status run_prompt_scoring(const step_batch& batch, step_logits& out);  // cuda_model_scoring.cpp
  // Writes the step's block tables into the persistent device table (cuda_model_step_input.cpp) and
  // table_rows_[i], the row seqs[i] reads.
  status stage_block_tables(const step_batch& batch);

  // CUDA graphs for decode steps. All graphs read one fixed metadata layout at the start of
  // buf_.meta (offsets in int32, sized for the largest graph batch); the block tables are the
  // persistent device table at tables_off_. A graph fixes num_splits; the keys per split are a device scalar set each
  // step. Padding rows have q_len 0 (no attention) and slot -1 (no KV write).
  struct decode_graph {
    int32_t batch = 0;
    int32_t num_splits = 1;
    cudaGraphExec_t exec = nullptr;
  };
  struct graph_layout {
    int64_t tok = 0, pos = 0, slot = 0, seq = 0, work = 0, split_len = 0, end = 0;
  };
  status capture_decode_graphs();
  status run_decode_body(int32_t batch, int32_t num_splits);  // what a graph records
  const decode_graph* graph_for(const step_batch& batch) const;
  status run_decode_graph(const decode_graph& g, const step_batch& batch, step_logits& out);

  model_config cfg_;
  cuda_model_options opts_;
  int64_t max_tokens_ = 0;
  int64_t max_blocks_per_seq_ = 0;
  int64_t logit_rows_ = 0;
  int64_t partial_capacity_ = 0;
  int64_t meta_ints_ = 0;
  int32_t num_sms_ = 0;
  cudaStream_t stream_ = nullptr;
  device_arena weights_, reserve_, kv_;
  int32_t* host_meta_ = nullptr;  // pinned [meta_ints_]
  // The persistent device block table: [max_batch_size, max_blocks_per_seq_] at buf_.meta +
  // tables_off_, mirrored (pinned staging) at host_meta_ + tables_off_; per-step metadata stays below it.
  int64_t tables_off_ = 0;
  bool tables_synced_ = false;      // its rows equal the executor's persistent batch as of its last view
  std::vector<int32_t> table_rows_; // [seqs] the row each sequence of the step reads
  float* host_logits_ = nullptr;  // pinned [max_batch_size, vocab] (rank 0): rows sampled on the host
  float* logits_dst_ = nullptr;   // set during forward_sampled: logits rows go here, not to out.data
  std::unique_ptr<device_sampling> dsamp_;  // rank 0: sampling on the device
  cublas_gemm gemm_;
  void* embed_ = nullptr;     // [vocab, hidden]
  void* final_norm_ = nullptr;
  void* lm_head_ = nullptr;   // [vocab, hidden]; == embed_ when tied
  std::vector<layer_weights> layers_;
  buffers buf_;
  paged_kv_layout kv_layout_;
  attention_schedule schedule_;
  std::vector<attention_seq> seqs_host_;
  std::vector<decode_graph> graphs_;  // ascending batch
  graph_layout glay_;
  uint64_t graph_bytes_ = 0;
};

}  // namespace troupe
