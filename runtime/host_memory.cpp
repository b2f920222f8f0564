// Reads /proc for system memory and the process's resident size; advises huge pages for weights.
#include "runtime/host_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1; older headers lack it, older kernels answer EINVAL
#endif

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

namespace troupe {
namespace {

constexpr uintptr_t huge_page = uintptr_t{2} << 20;

struct mapping {
  uintptr_t lo, hi;
};

// This process's mappings, from /proc/self/maps ("lo-hi perms offset dev inode path").
std::vector<mapping> read_mappings() {
  std::vector<mapping> out;
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line)) {
    mapping m{};
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> m.lo >> dash >> m.hi && dash == '-') out.push_back(m);
  }
  return out;
}

// [data, data + bytes) widened outwards to whole 2 MiB pages but kept inside the mapping holding
// it: a weight smaller than 2 MiB then shares huge pages with its neighbours in that mapping, which
// are mostly the other weights (allocated one after another at load). MADV_COLLAPSE refuses a range
// that reaches outside mapped memory.
bool advise_range(const std::vector<mapping>& maps, const void* data, size_t bytes) {
  if (!data || bytes == 0) return false;
  const uintptr_t b = reinterpret_cast<uintptr_t>(data), e = b + bytes;
  uintptr_t lo = b & ~(huge_page - 1), hi = (e + huge_page - 1) & ~(huge_page - 1);
  for (const auto& m : maps) {
    if (m.lo <= b && b < m.hi) lo = std::max(lo, m.lo);
    if (m.lo < e && e <= m.hi) hi = std::min(hi, m.hi);
  }
  void* p = reinterpret_cast<void*>(lo);
  const bool advised = madvise(p, hi - lo, MADV_HUGEPAGE) == 0;
  const bool collapsed = madvise(p, hi - lo, MADV_COLLAPSE) == 0;
  return advised && collapsed;
}

void advise_matrix(const std::vector<mapping>& maps, const weight_matrix& m) {
  if (!m.f32.empty()) advise_range(maps, m.f32.data(), m.f32.size() * sizeof(float));
  if (!m.half.empty()) advise_range(maps, m.half.data(), m.half.size() * sizeof(uint16_t));
  if (!m.quant.empty()) advise_range(maps, m.quant.data(), m.quant.size());
}

}  // namespace

bool advise_huge_pages(const void* data, size_t bytes) { return advise_range(read_mappings(), data, bytes); }

void advise_huge_pages(const model_weights& w) {
  const std::vector<mapping> maps = read_mappings();
  advise_matrix(maps, w.embed);
  advise_matrix(maps, w.lm_head);
  for (const auto& l : w.layers) {
    advise_matrix(maps, l.w_qkv);
    advise_matrix(maps, l.w_o);
    advise_matrix(maps, l.w_gate_up);
    advise_matrix(maps, l.w_down);
  }
}

uint64_t huge_page_bytes(const void* data, size_t bytes) {
  const uintptr_t b = reinterpret_cast<uintptr_t>(data), e = b + bytes;
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  uint64_t total = 0;
  while (std::getline(in, line)) {
    mapping m{};
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> m.lo >> dash >> m.hi && dash == '-') {
      inside = m.lo < e && b < m.hi;  // a mapping's header line; its fields follow
      continue;
    }
    if (inside && line.rfind("AnonHugePages:", 0) == 0) {
      uint64_t kib = 0;
      std::istringstream(line.substr(14)) >> kib;
      total += kib * 1024;
    }
  }
  return total;
}

}  // namespace troupe
