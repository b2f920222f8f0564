// A Llama-family model's weights laid out for the CPU forward pass: one struct per decoder layer,
// q/k/v and gate/up fused into single row-major matrices (float32, bf16, f16, or the GGUF's block
// format when every fused part shares one). Loaded from a
// weight_source with every shape checked against model_config, or filled with seeded random values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "config/error.h"
#include "runtime/model_config.h"
#include "runtime/weight_matrix.h"
#include "runtime/weight_source.h"

namespace troupe {

enum class load_format {
  weights,  // read the tensors from a weight_source
  dummy,    // random weights of the config's shapes (benchmarks, planning), seeded
};

struct weight_load_options {
  // How matrices are stored. Unset ("auto"): a matrix whose checkpoint tensors are all BF16 (F16)
  // stays bf16 (f16), all one GGML block format (Q4_0 ... Q6_K) stays in it, losslessly; anything
  // else (F32, mixed formats, a tensor-parallel shard) becomes float32. Set: that dtype for
  // every matrix (lossy when narrower than the checkpoint). Norms and biases are always float32.
  std::optional<weight_dtype> dtype;
  uint64_t seed = 0;  // load_format::dummy only
  // --mmap: a matrix the file already stores as it is held (same dtype, HF row order, fused parts
  // back to back, aligned) points into the file's read-only mapping instead of being copied; the
  // mapping lives as long as any matrix using it. false (the default, as `troupe serve`'s): every
  // matrix is copied, and the CPU model puts the copies on huge pages (docs/memory.md).
  bool mmap = false;
};

// Matrices are [out, in] row-major (Hugging Face nn.Linear layout): y = x · Wᵀ.
struct layer_weights {
  std::vector<float> attn_norm;  // [hidden]
  weight_matrix w_qkv;           // [q_size + 2 * kv_size, hidden]: q rows, then k, then v
  std::vector<float> b_qkv;      // [q_size + 2 * kv_size], empty unless attention_bias (Qwen2)
  std::vector<float> q_norm;     // [head_dim], empty unless qk_norm (Qwen3, Gemma 3): RMSNorm weight of each q head
  std::vector<float> k_norm;     // [head_dim], empty unless qk_norm
  weight_matrix w_o;             // [hidden, q_size]
  std::vector<float> mlp_norm;   // [hidden]
  weight_matrix w_gate_up;       // [2 * intermediate, hidden]: gate rows, then up rows
  weight_matrix w_down;          // [hidden, intermediate]
  // Gemma 3 only (empty otherwise); mlp_norm is then its pre_feedforward_layernorm.
  std::vector<float> post_attn_norm; // [hidden] (model_config::sandwich_norms)
  std::vector<float> post_mlp_norm;  // [hidden]
};

struct model_weights {
  weight_matrix embed;                // [vocab, hidden]
  std::vector<layer_weights> layers;  // [num_layers]
  std::vector<float> final_norm;      // [hidden]
  weight_matrix lm_head;              // [vocab, hidden]; empty when tied to embed

  const weight_matrix& lm_head_matrix() const { return lm_head.empty() ? embed : lm_head; }
  // Bytes held (owned and mapped alike: both are the model's resident weights), and the mapped share.
  int64_t num_bytes() const;
  int64_t mapped_bytes() const;
};

// Reads every tensor the config needs from `src` (fused qkv_proj / gate_up_proj checkpoints are
// split on the way: runtime/fused_weights.h). A missing tensor is errc::not_found and a shape
// that disagrees with the config is errc::corrupt_file; both name the tensor and the file.
result<model_weights> load_model_weights(const model_config& cfg, const weight_source& src,
                                         const weight_load_options& opts = {});

// The bytes load_model_weights(cfg, src, opts) holds (model_weights::num_bytes), from the tensors'
// shapes and storage types alone, without reading any data: what the memory plan counts on the
// CPU (a GGUF's block-format matrices are held as they are, mixed fused parts widened to float32).
result<uint64_t> held_weight_bytes(const model_config& cfg, const weight_source& src,
                                   const weight_load_options& opts = {});

// held_weight_bytes split into what load_model_weights will map from the file and what it will copy
// (model_weights::mapped_bytes), decided from the headers and the mapping's addresses alone.
struct held_weights {
  uint64_t bytes = 0;         // all held bytes (== held_weight_bytes)
  uint64_t mapped_bytes = 0;  // of which views into the file mapping
};
result<held_weights> plan_held_weights(const model_config& cfg, const weight_source& src,
                                       const weight_load_options& opts = {});

// The entry point for executors: load_format::weights opens `path` (open_weights: GGUF, safetensors
// file or HF folder) and loads it; load_format::dummy ignores `path` and makes random weights
// (opts.seed; opts.dtype or float32).
result<model_weights> load_model_weights(const model_config& cfg, const std::filesystem::path& path,
                                         load_format format, const weight_load_options& opts = {});

// Random weights with the config's shapes: matrices uniform in ±0.5/sqrt(in) (the embedding in
// ±1), norms 1, biases small. Same seed, same weights.
result<model_weights> make_dummy_weights(const model_config& cfg, uint64_t seed = 0,
                                         weight_dtype dtype = weight_dtype::f32);

}  // namespace troupe
