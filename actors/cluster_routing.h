// The pure logic of cluster mode, free of CAF: what a node says about itself in the handshake
// (binary version, model and tokenizer fingerprint) and whether two nodes may work together; the
// load a router knows of each worker and which worker a new request goes to; worker addresses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/error.h"
#include "runtime/model_config.h"

namespace troupe {

class tokenizer;

// Bumped whenever the messages between router and worker change meaning.
constexpr int32_t k_cluster_protocol = 1;

// What must be identical on the router and on every worker: the same build (messages cross the
// wire unchanged), the same model shape and the same tokenizer (the router encodes prompts, the
// worker decodes tokens).
struct cluster_identity {
  std::string version;      // "troupe 0.1.0, CAF 0.17.6, protocol 1"
  std::string model_name;   // the API's model id (informational: names may differ)
  std::string model_shape;  // "llama vocab=... hidden=... layers=... heads=4/2 head_dim=..."
  uint64_t tokenizer_fingerprint = 0;  // FNV-1a over the vocabulary and special ids; 0 = none
};

cluster_identity make_cluster_identity(const model_config& cfg, const tokenizer* tok);

// nullopt when `worker` may serve `router`'s requests, else the reason in one sentence.
std::optional<std::string> identity_mismatch(const cluster_identity& router, const cluster_identity& worker);

// The router's view of one worker's load: this router's own requests on it (exact and immediate)
// plus the other routers' share of the worker's last report (running + waiting minus ours).
struct worker_load {
  bool up = false;                      // handshake done and connection alive
  int32_t max_concurrent = 0;           // the worker's --max-concurrent-requests
  int32_t max_queued = 0;               // the worker's --max-queued-requests
  int64_t num_in_flight = 0;            // ours + other routers' (from the last report)
  int64_t num_blocks_total = 0;
  int64_t num_blocks_used = 0;
  uint64_t num_routed = 0;              // requests this router sent it (tie-break: round robin)
  int32_t prefix_depth = 0;             // leading prompt blocks this router sent it recently
};

// A worker with the request's prompt prefix in its cache is preferred while it has no more than
// this many requests in flight beyond the least loaded worker (so one hot prefix cannot pile every
// request onto one node).
constexpr int64_t k_prefix_slack = 4;

// Design note: the most free capacity wins. Capacity is first the free admission slots
// (max_concurrent - in flight: a request there starts at once), then the free KV fraction (a
// worker with cache to spare decodes without preemption), then the fewer requests routed so far,
// so equal workers take turns. A worker whose slots and queue are both full is never chosen; when
// every worker is full the answer is nullopt (HTTP 429 upstream). Prefix-aware: before all that, a
// worker that was recently sent the longest prefix of this prompt (prefix_depth > 0) wins if it has
// a free slot and at most k_prefix_slack more requests in flight than the least loaded worker.
std::optional<size_t> pick_worker(const std::vector<worker_load>& workers);

// Chained hashes of a prompt's leading full blocks: [i] covers tokens [0, (i+1) * block_tokens),
// at most `max_levels` of them; a prompt shorter than one block has none. Equal hashes at level i
// mean (up to collisions) an equal prefix that a worker's prefix cache may hold.
std::vector<uint64_t> prefix_hashes(const std::vector<int32_t>& prompt, int32_t block_tokens, int32_t max_levels);

struct host_port {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }
};

// "host:port" (IPv6 as "[::1]:port"); port 1..65535.
result<host_port> parse_host_port(const std::string& text);

}  // namespace troupe
