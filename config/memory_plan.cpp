// The memory planner (design.md §1). Design note: every rank is planned independently from its own
// free memory — weights (exact, after sharding), then the runtime reserve (a formula, below), then
// KV from what remains — and the block count is the minimum over ranks so that block ids mean the
// same thing on every rank. Nothing here touches a device: it is a pure function of its inputs.
#include "config/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace troupe {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// KV heads a rank holds: split when they divide, one replicated head per rank when fewer than tp.
int64_t kv_heads_per_rank(const plan_model_shape& m, int32_t tp) {
  return m.num_kv_heads >= tp ? m.num_kv_heads / tp : 1;
}

struct kv_size {
  uint64_t bytes = 0;
  std::string rule;
};

// Design note: the CPU default. The host is shared with everything else the user runs and the KV
// pool is committed page by page as blocks are used, so the GPU's "0.8 of what is free" would let a
// server left running on a laptop take most of its RAM under load. vLLM's CPU backend defaults to
// 4 GiB; less is enough when max_concurrent_requests full session_len sequences need less; never
// less than one full sequence (a plan that cannot serve one is useless), never more than the ratio
// 0.8 of what is left (a small machine gets the old default rather than an error).
kv_size cpu_default_kv(const memory_plan& p, const engine_options& o, uint64_t available) {
  const int64_t per_session = ceil_div(p.session_len, p.block_seq_len);
  const int64_t sessions_blocks = static_cast<int64_t>(o.max_concurrent_requests) * per_session;
  const int64_t cap_blocks = static_cast<int64_t>(kCpuDefaultKvBytes / static_cast<uint64_t>(o.tp) / p.block_bytes);
  const int64_t ratio_blocks =
      static_cast<int64_t>(static_cast<uint64_t>(std::floor(kDefaultKvRatio * available)) / p.block_bytes);
  const std::string cap = format_bytes(kCpuDefaultKvBytes) + " cap";
  char buf[256];
  int64_t blocks = 0;
  if (sessions_blocks <= cap_blocks) {
    blocks = sessions_blocks;
    std::snprintf(buf, sizeof buf, "%d full %lld-token sequences (max_concurrent_requests x session_len), under the %s",
                  o.max_concurrent_requests, static_cast<long long>(p.session_len), cap.c_str());
  } else if (per_session > cap_blocks) {
    blocks = per_session;
    std::snprintf(buf, sizeof buf, "one full %lld-token sequence, more than the %s", static_cast<long long>(p.session_len),
                  cap.c_str());
  } else {
    blocks = cap_blocks;
    const double need = static_cast<double>(sessions_blocks) * static_cast<double>(p.block_bytes) * o.tp;
    std::snprintf(buf, sizeof buf, "the %s (%d full %lld-token sequences would need %s)", cap.c_str(),
                  o.max_concurrent_requests, static_cast<long long>(p.session_len),
                  format_bytes(static_cast<uint64_t>(std::min(need, 1.8e19))).c_str());
  }
  std::string rule = buf;
  if (blocks > ratio_blocks) {
    blocks = ratio_blocks;
    std::snprintf(buf, sizeof buf, "ratio %.2f of the memory left after weights and reserve (less than ", kDefaultKvRatio);
    rule = buf + rule + ")";
  }
  return {static_cast<uint64_t>(blocks) * p.block_bytes, "cpu default: " + rule};
}

}  // namespace

uint64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "float32" || dtype == "fp32") return 4;
  if (dtype == "bfloat16" || dtype == "bf16" || dtype == "float16" || dtype == "fp16" || dtype == "half") return 2;
  return 0;
}

uint64_t weight_bytes_per_rank(const plan_model_shape& m, const std::string& dtype, int32_t tp) {
  const uint64_t b = dtype_bytes(dtype);
  const int64_t q_heads = m.num_heads / tp;
  const int64_t kv_heads = kv_heads_per_rank(m, tp);
  const int64_t h = m.hidden_size, d = m.head_dim;
  int64_t per_layer = 0;
  per_layer += h * q_heads * d;         // q_proj   [q_heads*d, h]
  per_layer += 2 * h * kv_heads * d;    // k_proj, v_proj
  per_layer += q_heads * d * h;         // o_proj   [h, q_heads*d]
  if (m.attention_bias) per_layer += (q_heads + 2 * kv_heads) * d;
  per_layer += 3 * h * (m.intermediate_size / tp);  // gate, up [inter/tp, h]; down [h, inter/tp]
  per_layer += 2 * h;                   // input and post-attention RMSNorm
  per_layer += m.extra_norm_floats_per_layer;
  int64_t total = per_layer * m.num_layers;
  total += m.vocab_size * h;                            // embedding (replicated)
  if (!m.tie_word_embeddings) total += m.vocab_size * h;  // LM head (replicated)
  total += h;                                           // final norm
  return static_cast<uint64_t>(total) * b;
}

// Design note: the reserve is what one step at the largest shape needs besides weights and KV.
//   activations = T * act_bytes * (2*h + (q + 2*kv)*d + q*d + 3*inter/tp)   T = max_prefill_token_num
//                 (residual + normed hidden, fused qkv, attention output, gate/up/act of the MLP)
//   logits      = B * vocab * 4          B = max_batch_size (float32 logits)
//   sampling    = B * vocab * (4 + 4)    (float32 probabilities + int32 sorted indices)
//   block_tables= B * ceil(session_len / block_seq_len) * 4
//   workspace   = GPU only: 32 MiB cuBLAS + 64 MiB CUDA-graph pools + NCCL 2*T*h*act when tp > 1
reserve_breakdown reserve_per_rank(const plan_model_shape& m, const std::string& dtype,
                                   const engine_options& o, int64_t session_len, bool on_gpu) {
  reserve_breakdown r;
  const uint64_t act = dtype_bytes(dtype);
  const uint64_t T = static_cast<uint64_t>(std::max(o.max_prefill_token_num, o.max_batch_size));
  const uint64_t B = static_cast<uint64_t>(o.max_batch_size);
  const int64_t q = m.num_heads / o.tp, kv = kv_heads_per_rank(m, o.tp), d = m.head_dim;
  const uint64_t per_token = 2 * m.hidden_size + (q + 2 * kv) * d + q * d + 3 * (m.intermediate_size / o.tp);
  r.activations = T * act * per_token;
  r.logits = B * static_cast<uint64_t>(m.vocab_size) * 4;
  r.sampling = B * static_cast<uint64_t>(m.vocab_size) * 8;
  r.block_tables = B * static_cast<uint64_t>(ceil_div(session_len, o.cache_block_seq_len)) * 4;
  if (on_gpu) {
    r.workspace = 32 * kMiB + 64 * kMiB;
    if (o.tp > 1) r.workspace += 2 * T * m.hidden_size * act;
  }
  return r;
}

result<memory_plan> make_memory_plan(const plan_model_shape& m, const engine_options& o, const std::string& dtype,
                                     const std::vector<device_memory>& devices) {
  if (dtype_bytes(dtype) == 0) return make_error(errc::invalid_argument, "unknown dtype '" + dtype + "'");
  if (o.tp < 1 || static_cast<size_t>(o.tp) != devices.size())
    return make_error(errc::invalid_argument, "the plan needs one device entry per tp rank");
  if (m.num_heads % o.tp != 0)
    return make_error(errc::invalid_argument, "--tp " + std::to_string(o.tp) + " does not divide the " +
                                                  std::to_string(m.num_heads) + " attention heads");
  if (m.num_kv_heads % o.tp != 0 && o.tp % m.num_kv_heads != 0)
    return make_error(errc::invalid_argument, "--tp " + std::to_string(o.tp) + " and the " +
                                                  std::to_string(m.num_kv_heads) +
                                                  " KV heads: one must divide the other");
  if (m.intermediate_size % o.tp != 0)
    return make_error(errc::invalid_argument, "--tp " + std::to_string(o.tp) + " does not divide intermediate_size " +
                                                  std::to_string(m.intermediate_size));
  if (o.cache_block_seq_len <= 0) return make_error(errc::invalid_argument, "--cache-block-seq-len must be positive");

  memory_plan p;
  p.device = o.device;
  p.dtype = dtype;
  // The KV cache's element type (--kv-cache-dtype): auto is float16 on the CPU (its KV cache is
  // 16-bit), the runtime dtype on a GPU.
  const std::string& kvd = o.model.kv_cache_dtype;
  p.kv_dtype = (kvd.empty() || kvd == "auto") ? (o.device == "cuda" ? dtype : "float16") : kvd;
  p.tp = o.tp;
  p.block_seq_len = o.cache_block_seq_len;
  p.session_len = o.session_len > 0 ? o.session_len : m.max_position_embeddings;
  p.max_batch_size = o.max_batch_size;
  p.max_prefill_token_num = o.max_prefill_token_num;
  p.max_concurrent_requests = o.max_concurrent_requests;
  const bool on_gpu = o.device == "cuda";
  const bool held = m.held_weight_bytes > 0 && o.tp == 1;
  p.weights_rule = held ? "as held: " + m.held_weight_formats : dtype + " for every matrix";
  p.num_local_layers = m.num_local_layers;
  p.sliding_window = m.sliding_window;
  p.block_bytes = static_cast<uint64_t>(o.cache_block_seq_len) * m.num_layers * kv_heads_per_rank(m, o.tp) *
                  m.head_dim * 2 * dtype_bytes(p.kv_dtype);

  // The CPU default is sized per rank below (its rule names the bound that applied).
  const bool cpu_default = !o.kv_cache_memory && !o.cache_max_entry_count && !on_gpu;
  const double ratio = o.cache_max_entry_count.value_or(kDefaultKvRatio);
  char buf[128];
  if (o.kv_cache_memory) {
    p.kv_rule = "kv-cache-memory " + format_bytes(*o.kv_cache_memory);
  } else if (ratio > 1.0) {
    std::snprintf(buf, sizeof buf, "%lld blocks", static_cast<long long>(ratio));
    p.kv_rule = buf;
  } else if (!cpu_default) {
    std::snprintf(buf, sizeof buf, "ratio %.2f of the memory left after weights and reserve", ratio);
    p.kv_rule = buf;
    if (ratio > 0.95)
      p.warnings.push_back("cache_max_entry_count " + std::to_string(ratio) +
                           " > 0.95 leaves almost nothing for fragmentation, the CUDA context and other processes");
  }

  int64_t min_blocks = -1;
  for (size_t r = 0; r < devices.size(); ++r) {
    rank_plan rp;
    rp.rank = static_cast<int32_t>(r);
    rp.device = devices[r];
    rp.weights_bytes = held ? m.held_weight_bytes : weight_bytes_per_rank(m, dtype, o.tp);
    rp.reserve = reserve_per_rank(m, dtype, o, p.session_len, on_gpu);
    rp.reserve_bytes = rp.reserve.total();
    const uint64_t free_b = rp.device.free_bytes;
    if (rp.weights_bytes > free_b)
      return make_error(errc::out_of_memory,
                        "rank " + std::to_string(r) + ": weights need " + format_bytes(rp.weights_bytes) + " but only " +
                            format_bytes(free_b) + " is free; use more ranks (--tp), a smaller dtype or a smaller model");
    if (rp.weights_bytes + rp.reserve_bytes >= free_b)
      return make_error(errc::out_of_memory,
                        "rank " + std::to_string(r) + ": weights (" + format_bytes(rp.weights_bytes) +
                            ") + runtime reserve (" + format_bytes(rp.reserve_bytes) + ") exceed the " +
                            format_bytes(free_b) +
                            " free, leaving nothing for the KV cache; lower --max-prefill-token-num or --max-batch-size");
    rp.available_for_kv = free_b - rp.weights_bytes - rp.reserve_bytes;
    std::string rank_rule;
    if (o.kv_cache_memory) {
      rp.kv_bytes_wanted = *o.kv_cache_memory;
    } else if (ratio > 1.0) {
      rp.kv_bytes_wanted = static_cast<uint64_t>(ratio) * p.block_bytes;
    } else if (cpu_default) {
      kv_size d = cpu_default_kv(p, o, rp.available_for_kv);
      rp.kv_bytes_wanted = d.bytes;
      rank_rule = std::move(d.rule);
    } else {
      rp.kv_bytes_wanted = static_cast<uint64_t>(std::floor(ratio * rp.available_for_kv));
    }
    if (rp.kv_bytes_wanted > rp.available_for_kv)
      return make_error(errc::out_of_memory, "rank " + std::to_string(r) + ": the KV cache asked for (" +
                                                 format_bytes(rp.kv_bytes_wanted) + ", " + p.kv_rule +
                                                 ") exceeds the " + format_bytes(rp.available_for_kv) +
                                                 " left after weights and reserve");
    const int64_t blocks = static_cast<int64_t>(rp.kv_bytes_wanted / p.block_bytes);
    if (cpu_default && (min_blocks < 0 || blocks < min_blocks)) p.kv_rule = rank_rule;  // the rank that decides
    min_blocks = min_blocks < 0 ? blocks : std::min(min_blocks, blocks);
    p.ranks.push_back(rp);
  }
  p.num_blocks = std::max<int64_t>(min_blocks, 0);
  p.kv_bytes_per_token = p.block_bytes / static_cast<uint64_t>(p.block_seq_len);
  p.token_capacity = p.num_blocks * p.block_seq_len;
  for (auto& rp : p.ranks) {
    rp.kv_bytes = static_cast<uint64_t>(p.num_blocks) * p.block_bytes;
    rp.free_after_bytes = rp.device.free_bytes - rp.weights_bytes - rp.reserve_bytes - rp.kv_bytes;
  }
  const int64_t blocks_per_session = ceil_div(p.session_len, p.block_seq_len);
  p.max_full_sessions = p.num_blocks / blocks_per_session;
  // Conversation pins share the cache with everything else and yield to any lease: a budget, not
  // a reservation, so nothing else in the plan changes.
  p.num_session_cache_blocks = o.enable_prefix_caching
                                   ? static_cast<int64_t>(static_cast<double>(p.num_blocks) * o.session_cache_fraction)
                                   : 0;
  if (p.max_full_sessions < 1)
    return make_error(errc::out_of_memory,
                      "not even one session_len sequence fits: session_len " + std::to_string(p.session_len) + " needs " +
                          std::to_string(blocks_per_session) + " blocks (" +
                          format_bytes(blocks_per_session * p.block_bytes) + ") but the KV cache holds " +
                          std::to_string(p.num_blocks) +
                          " blocks; lower --session-len or raise --cache-max-entry-count / --kv-cache-memory");
  return p;
}

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  if (bytes >= kGiB) std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / kGiB);
  else if (bytes >= kMiB) std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / kMiB);
  else if (bytes >= 1024) std::snprintf(buf, sizeof buf, "%.2f KiB", static_cast<double>(bytes) / 1024);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  return buf;
}

result<uint64_t> parse_byte_size(const std::string& text) {
  std::string s;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) s.push_back(c);
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return make_error(errc::invalid_argument, "'" + text + "' is not a size (try 20GiB, 512MB, 1048576)");
  double value = 0;
  try {
    value = std::stod(s.substr(0, i));
  } catch (...) {
    return make_error(errc::invalid_argument, "'" + text + "' is not a size");
  }
  std::string unit = s.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb") mult = 1e3;
  else if (unit == "m" || unit == "mb") mult = 1e6;
  else if (unit == "g" || unit == "gb") mult = 1e9;
  else if (unit == "t" || unit == "tb") mult = 1e12;
  else if (unit == "kib") mult = 1024.0;
  else if (unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else return make_error(errc::invalid_argument, "'" + text + "': unknown unit '" + unit + "'");
  const double bytes = value * mult;
  if (!(bytes > 0) || bytes > 1.8e19) return make_error(errc::invalid_argument, "'" + text + "' is out of range");
  return static_cast<uint64_t>(bytes);
}

std::string format_memory_plan(const memory_plan& p) {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "memory plan: device %s, dtype %s, tp %d, KV rule: %s\n", p.device.c_str(),
                p.dtype.c_str(), p.tp, p.kv_rule.c_str());
  out += buf;
  out += "  rank |        free |     weights |     reserve |    KV cache |  free after\n";
  out += "  -----+-------------+-------------+-------------+-------------+------------\n";
  for (const auto& r : p.ranks) {
    std::snprintf(buf, sizeof buf, "  %4d | %11s | %11s | %11s | %11s | %11s\n", r.rank,
                  format_bytes(r.device.free_bytes).c_str(), format_bytes(r.weights_bytes).c_str(),
                  format_bytes(r.reserve_bytes).c_str(), format_bytes(r.kv_bytes).c_str(),
                  format_bytes(r.free_after_bytes).c_str());
    out += buf;
  }
  if (!p.weights_rule.empty()) out += "  weights: " + p.weights_rule + "\n";
  {
    // Design note: local layers' KV lives in the same paged blocks as the global layers', so a
    // sliding window does not shrink the pool yet; the line says so rather than plan a saving the
    // allocation does not make.
    std::string kv_line = "  KV per token: " + format_bytes(p.kv_bytes_per_token) + " (" + p.kv_dtype + ", every layer";
    if (p.num_local_layers > 0)
      kv_line += "; " + std::to_string(p.num_local_layers) + " local layers with a " + std::to_string(p.sliding_window) +
                 "-token window attend to at most that many, but keep every position in the paged pool";
    out += kv_line + ")\n";
  }
  if (!p.ranks.empty()) {
    const auto& rs = p.ranks[0].reserve;
    std::snprintf(buf, sizeof buf,
                  "  reserve (rank 0): activations %s (max_prefill_token_num %d), logits %s + sampling %s "
                  "(max_batch_size %d), block tables %s, workspace %s\n",
                  format_bytes(rs.activations).c_str(), p.max_prefill_token_num, format_bytes(rs.logits).c_str(),
                  format_bytes(rs.sampling).c_str(), p.max_batch_size, format_bytes(rs.block_tables).c_str(),
                  format_bytes(rs.workspace).c_str());
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "  KV blocks: %lld x %s (%lld tokens each) = %lld tokens; session_len %lld -> %lld full sessions at once\n",
                static_cast<long long>(p.num_blocks), format_bytes(p.block_bytes).c_str(),
                static_cast<long long>(p.block_seq_len), static_cast<long long>(p.token_capacity),
                static_cast<long long>(p.session_len), static_cast<long long>(p.max_full_sessions));
  out += buf;
  std::snprintf(buf, sizeof buf,
                "  session cache: up to %lld blocks (%lld tokens) keep Responses conversations resident between turns "
                "(--session-cache-fraction); released first when a request needs blocks\n",
                static_cast<long long>(p.num_session_cache_blocks),
                static_cast<long long>(p.num_session_cache_blocks * p.block_seq_len));
  out += buf;
  std::snprintf(buf, sizeof buf,
                "  limits: max_concurrent_requests %d (requests in flight), max_batch_size %d (sequences per step), "
                "KV capacity %lld tokens (resident tokens)\n",
                p.max_concurrent_requests, p.max_batch_size, static_cast<long long>(p.token_capacity));
  out += buf;
  for (const auto& w : p.warnings) out += "  warning: " + w + "\n";
  return out;
}

std::string memory_plan_json(const memory_plan& p) {
  nlohmann::json j;
  j["device"] = p.device;
  j["dtype"] = p.dtype;
  j["kv_dtype"] = p.kv_dtype;
  j["tp"] = p.tp;
  j["kv_rule"] = p.kv_rule;
  j["block_bytes"] = p.block_bytes;
  j["block_seq_len"] = p.block_seq_len;
  j["num_blocks"] = p.num_blocks;
  j["token_capacity"] = p.token_capacity;
  j["session_len"] = p.session_len;
  j["max_full_sessions"] = p.max_full_sessions;
  j["num_session_cache_blocks"] = p.num_session_cache_blocks;
  j["max_batch_size"] = p.max_batch_size;
  j["max_prefill_token_num"] = p.max_prefill_token_num;
  j["max_concurrent_requests"] = p.max_concurrent_requests;
  j["warnings"] = p.warnings;
  j["weights_rule"] = p.weights_rule;
  j["kv_bytes_per_token"] = p.kv_bytes_per_token;
  j["num_local_layers"] = p.num_local_layers;
  j["sliding_window"] = p.sliding_window;
  j["ranks"] = nlohmann::json::array();
  for (const auto& r : p.ranks) {
    j["ranks"].push_back({{"rank", r.rank},
                          {"total_bytes", r.device.total_bytes},
                          {"free_bytes", r.device.free_bytes},
                          {"weights_bytes", r.weights_bytes},
                          {"reserve_bytes", r.reserve_bytes},
                          {"reserve",
                           {{"activations", r.reserve.activations},
                            {"logits", r.reserve.logits},
                            {"sampling", r.reserve.sampling},
                            {"block_tables", r.reserve.block_tables},
                            {"workspace", r.reserve.workspace}}},
                          {"available_for_kv_bytes", r.available_for_kv},
                          {"kv_bytes", r.kv_bytes},
                          {"free_after_bytes", r.free_after_bytes}});
  }
  return j.dump(2);
}

}  // namespace troupe
