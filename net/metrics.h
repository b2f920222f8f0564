// Prometheus metrics of the server: histograms the listener fills from event arrival times, the
// rejection counters, and render_metrics, which writes the text exposition format (vLLM's names
// with a `troupe:` prefix) from those plus an engine_stats snapshot and the memory plan.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "actors/engine.h"
#include "config/memory_plan.h"
#include "config/prometheus_text.h"  // prom_number, used by routes.cpp too

namespace troupe {

// A Prometheus histogram with fixed upper bounds (seconds). Thread-safe and lock-free: observe()
// runs once per streamed token on every session's thread, so it is a few relaxed atomic adds, not
// one mutex all sessions contend on. A snapshot reads the buckets one by one; its count is their
// sum, so buckets and count always agree (the sum may lag a concurrent observation).
class histogram {
 public:
  struct snapshot {
    std::vector<double> bounds;    // [num_buckets] upper bounds, ascending (+Inf implied)
    std::vector<uint64_t> counts;  // [num_buckets + 1] per bucket (not cumulative), last = +Inf
    double sum = 0.0;
    uint64_t count = 0;
  };

  explicit histogram(std::vector<double> bounds);
  void observe(double value);
  snapshot snap() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // [bounds_.size() + 1]
  std::atomic<double> sum_{0.0};
};

class server_metrics {
 public:
  server_metrics();

  histogram time_to_first_token;
  histogram inter_token_latency;
  histogram e2e_request_latency;
  histogram request_queue_time;

  void count_rejection(const std::string& reason);
  std::map<std::string, uint64_t> rejections() const;

  // A client disconnected because it did not read: reason "queue_full" (--max-queued-output-bytes)
  // or "write_timeout" (--write-timeout); protocol "http" or "ws". Every pair is exported from the
  // start, at 0.
  void count_slow_client(const std::string& protocol, const std::string& reason);
  std::map<std::pair<std::string, std::string>, uint64_t> slow_clients() const;  // by (protocol, reason)

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> rejections_;
  std::map<std::pair<std::string, std::string>, uint64_t> slow_clients_{
      {{"http", "queue_full"}, 0}, {{"http", "write_timeout"}, 0}, {{"ws", "queue_full"}, 0}, {{"ws", "write_timeout"}, 0}};
};

// Turns one request's event arrival times into histogram observations. Not thread-safe: lives on
// its session's strand.
class request_timing {
 public:
  using clock = std::chrono::steady_clock;
  request_timing(server_metrics& m, int32_t n);
  void on_event(const generation_event& ev);
  void on_done();  // the whole request ended (all choices)

 private:
  server_metrics& m_;
  clock::time_point start_;
  std::vector<clock::time_point> last_;  // [n] last token arrival per choice
  bool first_ = true;
  bool queue_observed_ = false;
  bool done_ = false;
};

struct metrics_view {
  const engine_stats* stats = nullptr;  // null when the engine did not answer in time
  const memory_plan* plan = nullptr;
  std::string model_name;
  std::vector<backend_memory> ranks;  // measured per tensor-parallel rank
};

std::string render_metrics(const server_metrics& m, const metrics_view& v);

}  // namespace troupe
