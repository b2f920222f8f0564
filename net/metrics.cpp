// Prometheus text exposition (format 0.0.4): HELP and TYPE once per family, cumulative buckets,
// _sum and _count. Names follow vLLM's (vllm:num_requests_running -> troupe:num_requests_running).
#include "net/metrics.h"

#include <cmath>

namespace troupe {

histogram::histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(double value) {
  if (!std::isfinite(value)) return;
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

histogram::snapshot histogram::snap() const {
  snapshot s;
  s.bounds = bounds_;
  s.counts.resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.count += s.counts[i];
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

server_metrics::server_metrics()
    : time_to_first_token({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                           2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}),
      inter_token_latency({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
                           5.0, 7.5, 10.0, 20.0, 40.0, 80.0}),
      e2e_request_latency({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                           50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}),
      request_queue_time({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                          50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}) {}

void server_metrics::count_rejection(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++rejections_[reason];
}

std::map<std::string, uint64_t> server_metrics::rejections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rejections_;
}

void server_metrics::count_slow_client(const std::string& protocol, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++slow_clients_[{protocol, reason}];
}

std::map<std::pair<std::string, std::string>, uint64_t> server_metrics::slow_clients() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slow_clients_;
}

request_timing::request_timing(server_metrics& m, int32_t n)
    : m_(m), start_(clock::now()), last_(static_cast<size_t>(n > 0 ? n : 1)) {}

void request_timing::on_event(const generation_event& ev) {
  const auto now = clock::now();
  if (!queue_observed_) {
    m_.request_queue_time.observe(ev.queue_time_s);
    queue_observed_ = true;
  }
  const size_t k = ev.token_ids.size();
  if (k == 0 || ev.index < 0 || static_cast<size_t>(ev.index) >= last_.size()) return;
  auto& last = last_[static_cast<size_t>(ev.index)];
  if (first_) {
    m_.time_to_first_token.observe(std::chrono::duration<double>(now - start_).count());
    first_ = false;
  } else if (last != clock::time_point{}) {
    // Several tokens in one event share the gap since the previous event of this choice.
    const double gap = std::chrono::duration<double>(now - last).count() / static_cast<double>(k);
    for (size_t i = 0; i < k; ++i) m_.inter_token_latency.observe(gap);
  }
  last = now;
}

void request_timing::on_done() {
  if (done_) return;
  done_ = true;
  m_.e2e_request_latency.observe(std::chrono::duration<double>(clock::now() - start_).count());
}

namespace {

class writer {
 public:
  explicit writer(const std::string& model) : model_label_("model_name=\"" + prom_escape_label(model) + "\"") {}

  void family(const std::string& name, const char* type, const char* help) {
    out_ += prom_family_header(name, type, help);
  }
  void sample(const std::string& name, double v, const std::string& extra_labels = {}) {
    out_ += name + "{" + model_label_ + (extra_labels.empty() ? "" : "," + extra_labels) + "} " +
            prom_number(v) + "\n";
  }
  void gauge(const std::string& name, const char* help, double v) {
    family(name, "gauge", help);
    sample(name, v);
  }
  void counter(const std::string& name, const char* help, double v) {
    family(name, "counter", help);
    sample(name, v);
  }
  void hist(const std::string& name, const char* help, const histogram::snapshot& s) {
    family(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < s.bounds.size(); ++i) {
      cumulative += s.counts[i];
      sample(name + "_bucket", static_cast<double>(cumulative), "le=\"" + prom_number(s.bounds[i]) + "\"");
    }
    cumulative += s.counts.back();
    sample(name + "_bucket", static_cast<double>(cumulative), "le=\"+Inf\"");
    sample(name + "_sum", s.sum);
    sample(name + "_count", static_cast<double>(s.count));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string model_label_;
  std::string out_;
};

void write_engine(writer& w, const engine_stats& s) {
  w.gauge("troupe:num_requests_running", "Number of requests in model execution batches.",
          static_cast<double>(s.num_requests_running));
  w.gauge("troupe:num_requests_waiting", "Number of requests waiting to be processed.",
          static_cast<double>(s.num_requests_waiting));
  const double usage = s.num_blocks_total > 0
                           ? static_cast<double>(s.num_blocks_used) / static_cast<double>(s.num_blocks_total)
                           : 0.0;
  w.gauge("troupe:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", usage);
  w.gauge("troupe:kv_blocks_total", "KV-cache blocks in the pool.", static_cast<double>(s.num_blocks_total));
  w.gauge("troupe:kv_blocks_used", "KV-cache blocks leased by live sequences.",
          static_cast<double>(s.num_blocks_used));
  w.gauge("troupe:kv_blocks_cached", "KV-cache blocks kept only for prefix-cache hits.",
          static_cast<double>(s.num_blocks_cached));
  w.counter("troupe:prefix_cache_queries_total", "Prefix-cache queries, in tokens queried.",
            static_cast<double>(s.prefix_cache_queries));
  w.counter("troupe:prefix_cache_hits_total", "Prefix-cache hits, in tokens.",
            static_cast<double>(s.prefix_cache_hits));
  w.counter("troupe:num_preemptions_total", "Cumulative number of preemptions from the engine.",
            static_cast<double>(s.num_preemptions));
  w.counter("troupe:block_alloc_failures_total", "Block allocations that failed (refused or timed out).",
            static_cast<double>(s.num_alloc_failures));
  w.counter("troupe:block_alloc_failed_requests_total",
            "Waiting requests failed because block allocations kept failing.",
            static_cast<double>(s.num_alloc_failed_requests));
  w.counter("troupe:steps_planned_ahead_total",
            "Forward steps planned and queued while the step before them ran (async scheduling).",
            static_cast<double>(s.num_steps_planned_ahead));
  w.counter("troupe:prompt_tokens_total", "Number of prefill tokens processed.",
            static_cast<double>(s.prompt_tokens_total));
  w.counter("troupe:generation_tokens_total", "Number of generation tokens processed.",
            static_cast<double>(s.generation_tokens_total));
  w.gauge("troupe:engine_last_step_age_seconds", "Seconds since the last completed forward step.",
          s.last_step_age_s);
}

void write_plan(writer& w, const memory_plan& p) {
  const struct {
    const char* name;
    const char* help;
    uint64_t rank_plan::*field;
  } per_rank[] = {
      {"troupe:memory_weights_bytes", "Planned weight bytes per rank.", &rank_plan::weights_bytes},
      {"troupe:memory_reserve_bytes", "Planned runtime reserve bytes per rank.", &rank_plan::reserve_bytes},
      {"troupe:memory_kv_bytes", "Planned KV-cache bytes per rank.", &rank_plan::kv_bytes},
  };
  for (const auto& f : per_rank) {
    w.family(f.name, "gauge", f.help);
    for (const rank_plan& r : p.ranks) {
      w.sample(f.name, static_cast<double>(r.*(f.field)), "rank=\"" + std::to_string(r.rank) + "\"");
    }
  }
  w.gauge("troupe:max_concurrent_requests", "Requests admitted into the scheduler at once.",
          static_cast<double>(p.max_concurrent_requests));
}

// What each tensor-parallel rank's backend actually holds (next to the planned gauges above).
void write_rank_memory(writer& w, const std::vector<backend_memory>& ranks) {
  if (ranks.empty()) return;
  const struct {
    const char* name;
    const char* help;
    uint64_t backend_memory::*field;
  } per_rank[] = {
      {"troupe:memory_weights_measured_bytes", "Weight bytes each rank holds, measured.", &backend_memory::weights_bytes},
      {"troupe:memory_kv_measured_bytes", "KV-pool bytes each rank holds, measured.", &backend_memory::kv_bytes},
  };
  for (const auto& f : per_rank) {
    w.family(f.name, "gauge", f.help);
    for (size_t r = 0; r < ranks.size(); ++r)
      w.sample(f.name, static_cast<double>(ranks[r].*(f.field)), "rank=\"" + std::to_string(r) + "\"");
  }
}

}  // namespace

std::string render_metrics(const server_metrics& m, const metrics_view& v) {
  writer w(v.model_name);
  if (v.stats) write_engine(w, *v.stats);
  if (v.plan) write_plan(w, *v.plan);
  write_rank_memory(w, v.ranks);
  w.hist("troupe:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
         m.time_to_first_token.snap());
  w.hist("troupe:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
         m.inter_token_latency.snap());
  w.hist("troupe:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
         m.e2e_request_latency.snap());
  w.hist("troupe:request_queue_time_seconds", "Histogram of time spent waiting for admission in seconds.",
         m.request_queue_time.snap());
  w.family("troupe:requests_rejected_total", "counter", "Requests answered with an error, by reason.");
  for (const auto& [reason, count] : m.rejections()) {
    w.sample("troupe:requests_rejected_total", static_cast<double>(count),
             "reason=\"" + prom_escape_label(reason) + "\"");
  }
  w.family("troupe:slow_client_disconnects_total", "counter",
           "Connections closed because the client did not read its responses, by protocol and reason.");
  for (const auto& [key, count] : m.slow_clients()) {
    w.sample("troupe:slow_client_disconnects_total", static_cast<double>(count),
             "protocol=\"" + prom_escape_label(key.first) + "\",reason=\"" + prom_escape_label(key.second) + "\"");
  }
  return w.take();
}

}  // namespace troupe
