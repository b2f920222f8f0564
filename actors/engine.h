// The engine facade: starts the actor system (scheduler, block manager, executors) from the options
// and offers submit / cancel / stats. Used by `troupe generate`, the HTTP listener and embedding
// programs. Thread-safe; never blocks the caller on generation. Callbacks run on actor threads:
// hand the work to your own executor (the listener uses asio::post).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/error.h"
#include "config/memory_plan.h"
#include "config/options.h"
#include "config/sampling_params.h"
#include "runtime/model_backend.h"
#include "runtime/model_config.h"
#include "runtime/generation.h"

namespace troupe {

class tokenizer;
class chat_template;

using event_callback = std::function<void(const generation_event&)>;
using error_callback = std::function<void(const error&)>;

struct engine_stats {
  int64_t num_requests_running = 0;
  int64_t num_requests_waiting = 0;
  int64_t num_blocks_total = 0;
  int64_t num_blocks_used = 0;    // leased by live sequences
  int64_t num_blocks_cached = 0;  // reference count 0, kept for prefix hits
  int64_t prefix_cache_queries = 0;  // tokens looked up
  int64_t prefix_cache_hits = 0;     // tokens found
  int64_t num_preemptions = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generation_tokens_total = 0;
  int64_t num_steps = 0;
  int64_t num_step_failures = 0;
  int64_t num_steps_planned_ahead = 0;     // async scheduling: steps planned while the one before ran
  int64_t num_alloc_failures = 0;          // block allocations that failed (refused or timed out)
  int64_t num_alloc_failed_requests = 0;   // waiting requests failed because allocations kept failing
  double last_step_age_s = 0.0;  // seconds since the last completed step (health)
  bool busy = false;             // work is pending
};

class engine {
 public:
  // Loads the model, plans memory, starts the actors. Fails with a clear error (bad model file,
  // plan that does not fit, ...).
  static result<std::unique_ptr<engine>> start(const troupe_options& opts);
  virtual ~engine() = default;

  virtual const model_config& model() const = 0;
  virtual const tokenizer* tok() const = 0;          // null for models without one
  virtual const chat_template* chat() const = 0;     // null if the model has no template
  virtual const memory_plan& plan() const = 0;
  virtual const troupe_options& options() const = 0;
  // Memory each tensor-parallel rank's backend holds, measured (empty when the engine has no local
  // backends).
  virtual std::vector<backend_memory> rank_memory() const { return {}; }

  // Submits a request. Exactly one of: every choice ends with an event whose finish != none, or
  // on_error is called once (overloaded, invalid, context_too_long, device_error, draining...).
  virtual void submit(generation_request req, event_callback on_event, error_callback on_error) = 0;
  // Cancels a request wherever it is (queued, prefilling, decoding); its blocks return at once.
  // Its choices end with finish_reason::cancelled. Unknown ids are ignored.
  virtual void cancel(const std::string& request_id) = 0;
  // A snapshot of the counters (asks the actors; bounded wait).
  virtual result<engine_stats> stats(std::chrono::milliseconds timeout) = 0;
  // Stops admitting (submit answers `draining`), waits up to `timeout` for in-flight requests,
  // then cancels the rest.
  virtual void drain(std::chrono::milliseconds timeout) = 0;

  // Cluster mode (docs/cluster.md). A worker publishes its scheduler for routers on
  // --cluster-port and returns the bound port; other engines answer `unsupported`.
  virtual result<uint16_t> publish_worker() { return make_error(errc::unsupported, "not a worker engine"); }
  // Extra Prometheus text for /metrics (a router's per-worker gauges); empty by default.
  virtual std::string cluster_metrics() { return {}; }
};

}  // namespace troupe
