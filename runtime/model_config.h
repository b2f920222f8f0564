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
  int64_t original_max_position_embeddings = 8192;  // llama3, longrope
  // Per-dimension divisors of the rotary frequencies, [head_dim / 2] (empty: none): a GGUF file's
  // rope_freqs.weight (how llama.cpp stores Llama 3 scaling) or the LongRoPE factor list in use.
  std::vector<float> freq_factors;
  // "longrope" (Phi-3; "su" is its old name): both factor lists from the config; the long list is
  // used when the model's context exceeds original_max_position_embeddings (as vLLM decides, once
  // per model, so cached keys never change meaning), else the short list.
  std::vector<float> long_factor, short_factor;
  double attention_factor = 1.0;  // multiplies cos and sin (LongRoPE's sqrt(1 + ln s / ln L)); 1 elsewhere
};

struct model_config {
  std::string architecture;  // one of supported_architectures() (SmolLM2 is "llama")
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
  bool qk_norm = false;         // per-head RMSNorm of q and k before rotary (Qwen3, Gemma 3: q_norm, k_norm)
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

// The architectures troupe runs, as config.json's model_type and GGUF's general.architecture
// spell them: "llama, qwen2, qwen3, mistral, phi3" (for error messages).
const std::vector<std::string>& supported_architectures();
std::string supported_architectures_list();
bool is_supported_architecture(const std::string& arch);

// Reads the architecture from `path`: a folder with config.json, a config.json file, or a .gguf
// file. Errors name the file and the offending key.
result<model_config> read_model_config(const std::filesystem::path& path);

// Parses the text of a Hugging Face config.json (exposed for tests and fuzzing).
result<model_config> parse_hf_config(const std::string& json_text, const std::string& origin);

// LongRoPE: derives factor and attention_factor when the config leaves them out (as transformers
// does) and picks freq_factors from the long or short list by the model's context. No-op otherwise.
void resolve_longrope(model_config& cfg);

// Checks the invariants every consumer relies on (positive sizes, heads divide, ...).
status validate_model_config(const model_config& cfg, const std::string& origin);

}  // namespace troupe
