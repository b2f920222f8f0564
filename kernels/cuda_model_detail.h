// Helpers shared by the cuda_model_*.cpp files (not part of any interface): byte alignment of the
// arenas, HF tensor names, the model's dimensions in short names, and which RMSNorm form it uses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model_config.h"

namespace troupe::cuda_model_detail {

inline constexpr uint64_t kAlign = 256;
inline constexpr uint64_t kCublasWorkspace = 32ull << 20;

inline uint64_t align_up(uint64_t v, uint64_t a = kAlign) { return (v + a - 1) / a * a; }

inline std::string layer_name(int64_t i, const char* rest) { return "model.layers." + std::to_string(i) + "." + rest; }

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

struct model_dims {
  int64_t V, H, I, L, Hq, Hkv, D, qkv;
  explicit model_dims(const model_config& c)
      : V(c.vocab_size), H(c.hidden_size), I(c.intermediate_size), L(c.num_layers), Hq(c.num_heads),
        Hkv(c.num_kv_heads), D(c.head_dim), qkv((c.num_heads + 2 * c.num_kv_heads) * c.head_dim) {}
};

// Gemma 3's RMSNorm is x̂ * (1 + w); its weights go to the device as w (an HF checkpoint's value, a
// GGUF's stored 1 + w less one) so bf16 keeps w's bits, and the kernels add the one in float32.
inline bool gemma_norm_form(const model_config& c) { return c.architecture == "gemma3"; }

}  // namespace troupe::cuda_model_detail
