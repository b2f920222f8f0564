// Handshake comparison, routing choice and address parsing of cluster mode (see cluster_routing.h).
#include "actors/cluster_routing.h"

#include <charconv>

#include "runtime/tokenizer.h"

namespace troupe {

namespace {

void fnv(uint64_t& h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
}

}  // namespace

cluster_identity make_cluster_identity(const model_config& cfg, const tokenizer* tok) {
  cluster_identity id;
  id.version = std::string("troupe ") + TROUPE_VERSION_STRING + ", protocol " + std::to_string(k_cluster_protocol);
  id.model_name = cfg.name;
  id.model_shape = cfg.architecture + " vocab=" + std::to_string(cfg.vocab_size) +
                   " hidden=" + std::to_string(cfg.hidden_size) + " ffn=" + std::to_string(cfg.intermediate_size) +
                   " layers=" + std::to_string(cfg.num_layers) + " heads=" + std::to_string(cfg.num_heads) + "/" +
                   std::to_string(cfg.num_kv_heads) + " head_dim=" + std::to_string(cfg.head_dim) +
                   " max_pos=" + std::to_string(cfg.max_position_embeddings) + " weights=" + cfg.source_dtype;
  if (tok) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t i = 0; i < tok->vocab_size(); ++i) {
      const std::string& t = tok->token_text(i);
      fnv(h, t.data(), t.size());
      fnv(h, "\0", 1);
    }
    for (int32_t e : tok->eos_ids()) fnv(h, &e, sizeof e);
    const int32_t bos = tok->bos_id();
    fnv(h, &bos, sizeof bos);
    id.tokenizer_fingerprint = h;
  }
  return id;
}

std::optional<std::string> identity_mismatch(const cluster_identity& router, const cluster_identity& worker) {
  if (router.version != worker.version)
    return "version mismatch: the router runs '" + router.version + "', the worker '" + worker.version +
           "' (run the same binary on every node)";
  if (router.model_shape != worker.model_shape)
    return "model mismatch: the router serves " + router.model_name + " [" + router.model_shape +
           "], the worker " + worker.model_name + " [" + worker.model_shape + "] (start both with the same --model)";
  if (router.tokenizer_fingerprint != worker.tokenizer_fingerprint)
    return "tokenizer mismatch: the router's tokenizer (fingerprint " + std::to_string(router.tokenizer_fingerprint) +
           ") differs from the worker's (" + std::to_string(worker.tokenizer_fingerprint) +
           ") (start both with the same --model)";
  return std::nullopt;
}

namespace {

int64_t free_slots(const worker_load& w) { return static_cast<int64_t>(w.max_concurrent) - w.num_in_flight; }

double kv_free(const worker_load& w) {
  return w.num_blocks_total > 0
             ? 1.0 - static_cast<double>(w.num_blocks_used) / static_cast<double>(w.num_blocks_total)
             : 0.0;
}

bool full(const worker_load& w) { return w.num_in_flight >= static_cast<int64_t>(w.max_concurrent) + w.max_queued; }

// True when `w` has more free capacity than `b` (see pick_worker).
bool roomier(const worker_load& w, const worker_load& b) {
  if (free_slots(w) != free_slots(b)) return free_slots(w) > free_slots(b);
  if (kv_free(w) != kv_free(b)) return kv_free(w) > kv_free(b);
  return w.num_routed < b.num_routed;
}

}  // namespace

std::optional<size_t> pick_worker(const std::vector<worker_load>& workers) {
  std::optional<size_t> best;
  for (size_t i = 0; i < workers.size(); ++i) {
    if (!workers[i].up || full(workers[i])) continue;
    if (!best || roomier(workers[i], workers[*best])) best = i;
  }
  if (!best) return best;
  // Prefix affinity: the deepest cached prefix among the workers that can start it at once and
  // are not much busier than the least loaded one.
  const int64_t least = workers[*best].num_in_flight;
  std::optional<size_t> affine;
  for (size_t i = 0; i < workers.size(); ++i) {
    const worker_load& w = workers[i];
    if (!w.up || full(w) || w.prefix_depth == 0 || free_slots(w) <= 0) continue;
    if (w.num_in_flight > least + k_prefix_slack) continue;
    if (!affine || w.prefix_depth > workers[*affine].prefix_depth ||
        (w.prefix_depth == workers[*affine].prefix_depth && roomier(w, workers[*affine])))
      affine = i;
  }
  return affine ? affine : best;
}

std::vector<uint64_t> prefix_hashes(const std::vector<int32_t>& prompt, int32_t block_tokens, int32_t max_levels) {
  std::vector<uint64_t> out;
  if (block_tokens <= 0) return out;
  uint64_t h = 1469598103934665603ull;
  const size_t bt = static_cast<size_t>(block_tokens);
  for (size_t end = bt; end <= prompt.size() && static_cast<int32_t>(out.size()) < max_levels; end += bt) {
    fnv(h, prompt.data() + (end - bt), bt * sizeof(int32_t));
    out.push_back(h);
  }
  return out;
}

result<host_port> parse_host_port(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::invalid_argument, "worker address '" + text + "': " + why + " (expected host:port)");
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad("no host or port");
  std::string host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return bad("empty host");
  unsigned long long p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535)
    return bad("port must be a number in [1, 65535]");
  return host_port{host, static_cast<uint16_t>(p)};
}

}  // namespace troupe
