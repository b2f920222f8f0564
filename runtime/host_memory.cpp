// Reads /proc for system memory and the process's resident size.
#include "runtime/host_memory.h"

#include <fstream>
#include <string>

#include <unistd.h>

namespace troupe {

device_memory host_device_memory() {
  device_memory m;
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  std::string unit;
  while (in >> key >> value >> unit) {
    if (key == "MemTotal:") m.total_bytes = value * 1024;
    else if (key == "MemAvailable:") m.free_bytes = value * 1024;
  }
  return m;
}

plan_model_shape to_plan_shape(const model_config& c) {
  plan_model_shape s;
  s.vocab_size = c.vocab_size;
  s.hidden_size = c.hidden_size;
  s.intermediate_size = c.intermediate_size;
  s.num_layers = c.num_layers;
  s.num_heads = c.num_heads;
  s.num_kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim;
  s.max_position_embeddings = c.max_position_embeddings;
  s.tie_word_embeddings = c.tie_word_embeddings;
  s.attention_bias = c.attention_bias;
  for (int64_t l = 0; l < c.num_layers; ++l) s.num_local_layers += c.layer_window(l) > 0;
  s.sliding_window = c.sliding_window;
  s.extra_norm_floats_per_layer = (c.sandwich_norms ? 2 * c.hidden_size : 0) + (c.qk_norm ? 2 * c.head_dim : 0);
  return s;
}

std::string resolve_dtype(const std::string& dtype, const std::string& device) {
  if (dtype == "auto" || dtype.empty()) return device == "cuda" ? "bfloat16" : "float32";
  return dtype;
}

uint64_t process_rss_bytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace troupe
