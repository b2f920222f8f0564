// Every option of troupe in one place, with LMDeploy's names where they exist. Filled from defaults,
// then a config file (JSON; same keys as the long flags with '-' or '_'), then the command line.
// The three limits are different things:
//   max_concurrent_requests - requests admitted into the scheduler at once (others wait in a
//                             bounded queue: max_queued_requests, queue_timeout, then HTTP 429);
//   max_batch_size          - sequences in one forward step;
//   KV blocks               - tokens resident in the cache (from the memory plan).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

struct model_options {
  std::string model;          // GGUF file, HF folder, or config.json; empty = the default model
  std::string dtype = "auto"; // auto|float32|bfloat16|float16 (runtime dtype on the device)
  std::string load_format = "auto";  // auto|dummy (random weights from config.json)
  std::string kv_cache_dtype = "auto";  // auto|float32|bfloat16|float16; auto: float16 on cpu, dtype on cuda
  bool mmap = false;          // CPU: --mmap: weights stored as held are views into the mapped file (default: copied)
  std::string chat_template;  // Jinja file or template text replacing the model's; empty = the model's
};

// Test-only fault injection (--fault-inject); every field 0 = off, and all off changes nothing.
struct fault_inject_options {
  int32_t fail_step = 0;            // the forward step with this number (1-based) fails (device_error)
  int32_t fail_steps = 1;           // ... and this many consecutive steps from it
  int32_t slow_ms = 0;              // every forward step sleeps this long first
  int32_t rank = -1;                // fail_step/slow_ms on this tensor-parallel rank only (-1: every rank)
  int32_t refuse_blocks_after = 0;  // after this many allocation requests the block manager refuses
  int32_t refuse_blocks_count = 1;  // ... this many (then serves again); -1 = refuses for good
  bool any() const { return fail_step > 0 || slow_ms > 0 || refuse_blocks_after > 0; }
};

struct engine_options {
  model_options model;
  std::string device = "cpu";  // cpu|cuda
  int32_t tp = 1;
  bool tp_collectives = false;             // all-reduce path even with tp 1 (tests the collectives)
  bool enforce_eager = false;              // CUDA: no decode graphs, every kernel launched per step
  int32_t session_len = 0;                 // max tokens per sequence; 0 = model's max positions
  int32_t max_batch_size = 128;            // sequences per forward step
  int32_t max_prefill_token_num = 2048;    // prefill tokens per forward step
  // KV cache size: (0,1] a fraction of the memory left after weights and reserve; > 1 a number of
  // blocks. Unset (and no kv_cache_memory): 0.8 on a GPU; on the CPU a bounded default (memory_plan.h).
  std::optional<double> cache_max_entry_count;
  int32_t cache_block_seq_len = 64;        // tokens per KV block
  std::optional<uint64_t> kv_cache_memory; // bytes; overrides cache_max_entry_count
  bool enable_prefix_caching = true;
  // Share of the KV blocks that Responses API conversations may keep pinned between turns (their
  // prompt + output stays resident for the next turn); 0 = off. Pins yield to any lease.
  double session_cache_fraction = 0.25;
  int32_t max_concurrent_requests = 256;   // requests in flight
  int32_t max_queued_requests = 1024;      // admission queue bound
  double queue_timeout_s = 30.0;           // longest wait in the admission queue
  int32_t num_threads = 0;                 // CPU compute threads; 0 = hardware concurrency
  std::optional<uint64_t> device_memory;   // plan for a device of this size (simulation)
  int32_t step_timeout_ms = 600000;        // a forward step longer than this fails the step
  bool async_scheduling = true;            // plan step N+1 while step N runs (one rank; tp > 1: off)
  // Polls an idle actor worker makes 50 µs apart before it blocks until a message wakes it (CAF's
  // work-stealing moderate phase); 0 blocks at once. See actors/actor_system_setup.h.
  int32_t actor_moderate_polls = 0;
  fault_inject_options fault_inject;       // test-only (--fault-inject)
};

struct server_options {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string api_key;                // empty = no auth
  std::string served_model_name;      // empty = derived from the model file
  uint64_t max_body_bytes = 1 << 20;  // larger bodies get 413
  int32_t max_connections = 1024;
  double header_timeout_s = 10.0;     // the whole header must arrive within this
  double idle_timeout_s = 60.0;       // an idle keep-alive connection is closed after this
  double drain_timeout_s = 30.0;      // on SIGTERM: finish in-flight work for at most this long
  int32_t max_n = 16;                 // largest `n` accepted
  std::vector<std::string> allowed_hosts;    // Host names served besides loopback and --host ("*": any)
  std::vector<std::string> allowed_origins;  // browser origins served besides own and loopback ("*": any)
  std::vector<std::string> extensions;  // named extensions linked into the binary, in order
  int32_t max_json_depth = 64;        // request JSON nested deeper gets HTTP 400
  uint64_t max_queued_output_bytes = 8 << 20;  // per connection (HTTP or WebSocket): unwritten output
                                               // beyond this disconnects the client
  double write_timeout_s = 30.0;      // a write that makes no progress this long disconnects the client
  std::string logprobs_mode = "raw";  // default of a request's logprobs_mode: raw or processed
  // Chat answers' <think>...</think> spans go to reasoning_content: auto (when the chat template
  // writes <think>), qwen3 / deepseek_r1 (always), none (never).
  std::string reasoning_parser = "auto";
  int32_t response_store_size = 1024;  // stored Responses API responses at most (oldest evicted); 0 = none kept
  double response_store_ttl_s = 3600;  // a stored response older than this is evicted
};

// Cluster mode (docs/cluster.md): a router node in front of worker nodes over CAF's middleman.
struct cluster_options {
  std::string role = "standalone";   // standalone|worker|router
  std::vector<std::string> workers;  // router: worker addresses host:port (their --cluster-port)
  std::string cluster_host;          // worker: address to publish on; empty = --host
  uint16_t cluster_port = 8001;      // worker: port of the published worker actor (0 = any free port)
  double poll_interval_s = 0.25;     // router: how often each worker's load is asked for
  double reconnect_interval_s = 1.0; // router: how often an absent worker is tried again
  bool prefix_routing = true;        // router: prefer the worker that was sent the prompt's prefix
  std::optional<uint16_t> join_port; // router: workers may join on this port (0 = any); unset = off
  std::string join;                  // worker: the router's join address host:port; empty = off
  std::string tls_cert;              // this node's PEM certificate (chain), signed by the cluster CA
  std::string tls_key;               // its PEM private key (unencrypted)
  std::string tls_ca;                // PEM CA certificate(s) a peer's certificate must chain to
  bool insecure = false;             // plaintext, unauthenticated cluster links: loopback only
};

struct troupe_options {
  engine_options engine;
  server_options server;
  cluster_options cluster;
  std::string log_level = "info";
  std::string config_file;
};

}  // namespace troupe
