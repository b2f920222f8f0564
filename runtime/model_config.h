// Model architecture metadata, read without loading weights: from a Hugging Face folder
// (config.json; top-level rope_theta/rope_scaling or transformers 5's rope_parameters), a bare
// config.json, or a GGUF file's header. The forward pass, the planner and the loaders share it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "config/error.h"

namespace troupe {

struct rope_config {
  double theta = 10000.0;
  std::string type = "default";  // "default" | "llama3" | "linear"
  double factor = 1.0;           // llama3 / linear scaling factor
  double low_freq_factor = 1.0;  // llama3
  double high_freq_factor = 4.0; // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct model_config {
  std::string architecture;  // "llama" | "qwen2" | "mistral" | "gemma3" (SmolLM2 is "llama")
  std::string name;          // display name (folder or GGUF general.name)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // from the config when present, else hidden_size / num_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-5;
  rope_config rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections carry a bias (Qwen2)
  int64_t sliding_window = 0;   // 0 = none
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string source_dtype = "float32";  // dtype of the stored weights: float32|float16|bfloat16|gguf

  // Gemma 3 (all off for the Llama family). The forward pass and the loader read these flags, not
  // the architecture name.
  std::vector<uint8_t> layer_sliding;  // per layer: 1 = local (sliding_window), 0 = global;
                                       // empty = sliding_window (if any) applies to every layer
  rope_config rope_local;              // rotary of the local layers when layer_sliding is set
  double query_pre_attn_scalar = 0;    // attention scale 1/sqrt(this); 0 = 1/sqrt(head_dim)
  double final_logit_softcapping = 0; // logits = cap * tanh(logits / cap); 0 = none
  double embed_scale = 0;              // embeddings multiplied by this (√hidden); 0 = none
  bool qk_norm = false;                // per-head RMSNorm on q and k before rotary (q_norm, k_norm)
  bool sandwich_norms = false;         // RMSNorm on the attention and MLP outputs before the residual add
  bool gelu_tanh_mlp = false;          // GeGLU: gelu(tanh approximation)(gate) * up instead of SiLU
  float norm_weight_offset = 0;        // added to every RMSNorm weight at load: 1 for Gemma's (1 + w)
                                       // in HF checkpoints (GGUF files store 1 + w already)

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  // The attention window of layer `l` (0 = full attention).
  int64_t layer_window(int64_t l) const {
    if (layer_sliding.empty()) return sliding_window;
    return l >= 0 && static_cast<size_t>(l) < layer_sliding.size() && layer_sliding[static_cast<size_t>(l)] ? sliding_window : 0;
  }
};

// Reads the architecture from `path`: a folder with config.json, a config.json file, or a .gguf
// file. Errors name the file and the offending key.
result<model_config> read_model_config(const std::filesystem::path& path);

// Parses the text of a Hugging Face config.json (exposed for tests and fuzzing).
result<model_config> parse_hf_config(const std::string& json_text, const std::string& origin);

// Checks the invariants every consumer relies on (positive sizes, heads divide, ...).
status validate_model_config(const model_config& cfg, const std::string& origin);

}  // namespace troupe
