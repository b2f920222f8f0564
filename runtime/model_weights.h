// A Llama-family model's weights in float32, laid out for the CPU forward pass: one struct per
// decoder layer with q/k/v and gate/up fused into single row-major matrices. Loaded from a
// weight_source with every shape checked against model_config, or filled with seeded random values.
#pragma once

#include <cstdint>
#include <vector>

#include "config/error.h"
#include "runtime/model_config.h"
#include "runtime/weight_source.h"

namespace troupe {

enum class load_format {
  weights,  // read the tensors from a weight_source
  dummy,    // random weights of the config's shapes (benchmarks, planning), seeded
};

// Matrices are [out, in] row-major (Hugging Face nn.Linear layout): y = x · Wᵀ.
struct layer_weights {
  std::vector<float> attn_norm;  // [hidden]
  std::vector<float> w_qkv;      // [q_size + 2 * kv_size, hidden]: q rows, then k, then v
  std::vector<float> b_qkv;      // [q_size + 2 * kv_size], empty unless attention_bias (Qwen2)
  std::vector<float> w_o;        // [hidden, q_size]
  std::vector<float> mlp_norm;   // [hidden]
  std::vector<float> w_gate_up;  // [2 * intermediate, hidden]: gate rows, then up rows
  std::vector<float> w_down;     // [hidden, intermediate]
};

struct model_weights {
  std::vector<float> embed;       // [vocab, hidden]
  std::vector<layer_weights> layers;  // [num_layers]
  std::vector<float> final_norm;  // [hidden]
  std::vector<float> lm_head;     // [vocab, hidden]; empty when tied to embed

  const float* lm_head_data() const { return lm_head.empty() ? embed.data() : lm_head.data(); }
  int64_t num_bytes() const;
};

// Reads every tensor the config needs from `src`. A missing tensor is errc::not_found and a shape
// that disagrees with the config is errc::corrupt_file; both name the tensor and the file.
result<model_weights> load_model_weights(const model_config& cfg, const weight_source& src);

// Random weights with the config's shapes: matrices uniform in ±0.5/sqrt(in), norms 1, biases
// small. Same seed, same weights.
result<model_weights> make_dummy_weights(const model_config& cfg, uint64_t seed = 0);

}  // namespace troupe
