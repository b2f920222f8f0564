// What the scheduler and block manager cost per step, without model compute: an executor whose
// forward pass only fills logits rows, B concurrent requests decoding in lock step. Per batch size:
// µs per step, µs per sequence-step, CAF messages handled per step and heap allocations per step
// (a counting global operator new), the last two over a window of steady decode steps. The actor
// system is configured as serving configures it (actor_system_setup.h); --moderate-polls N sets CAF's
// moderate polling as --actor-moderate-polls does (500: CAF's own default). --forward-us N makes each
// forward pass take N µs (spinning, as a device would keep the executor busy): with async scheduling
// (the default; --no-async plans each step after the last answered) the scheduler's work hides
// behind it, and µs per step approach N.
//   bench_scheduler_overhead [--json] [--reps N] [--tokens N] [--moderate-polls N] [--forward-us N]
//                            [--no-async] [batch sizes...]   (default batch sizes: 1 64 256 1024)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "actors/actor_system_setup.h"
#include "actors/block_manager_actor.h"
#include "actors/event_hub.h"
#include "actors/executor_actor.h"
#include "actors/message_count.h"
#include "actors/scheduler_actor.h"
#include "bench/counting_allocator.h"

namespace {

using namespace troupe;
using clock_type = std::chrono::steady_clock;

// Counters at the start of one forward pass.
struct snapshot {
  clock_type::time_point at;
  uint64_t messages = 0;
  uint64_t allocations = 0;
};

snapshot take_snapshot() {
  return {clock_type::now(), messages_handled(), bench::heap_allocations()};
}

// Logits that always pick token 1; vocab 64 keeps sampling negligible. Snapshots the counters at the
// steps that open and close the steady-decode window.
class cheap_backend : public model_backend {
 public:
  cheap_backend(int64_t window_begin, int64_t window_end, int forward_us)
      : begin_(window_begin), end_(window_end), forward_us_(forward_us) {
    cfg_.architecture = "llama";
    cfg_.vocab_size = 64;
  }
  const model_config& config() const override { return cfg_; }
  int64_t num_kv_blocks() const override { return 1 << 16; }
  int64_t block_seq_len() const override { return 16; }
  status forward(const step_batch& b, step_logits& out) override {
    const int64_t step = steps.fetch_add(1);
    if (step == begin_) first = take_snapshot();
    if (step == end_) last = take_snapshot();
    if (forward_us_ > 0) {  // the device's time: the executor's thread stays busy
      const auto until = clock_type::now() + std::chrono::microseconds(forward_us_);
      while (clock_type::now() < until) {
      }
    }
    out.vocab_size = cfg_.vocab_size;
    out.row_seq.clear();
    out.data.assign(b.seqs.size() * cfg_.vocab_size, 0.0f);
    for (size_t i = 0; i < b.seqs.size(); ++i) {
      out.row_seq.push_back(static_cast<int32_t>(i));
      out.data[i * cfg_.vocab_size + 1] = 1.0f;
    }
    return ok_status();
  }
  std::atomic<int64_t> steps{0};
  snapshot first, last;  // written on the executor's thread; read after every request finished

 private:
  model_config cfg_;
  int64_t begin_, end_;
  int forward_us_ = 0;
};

struct row {
  int batch = 0;
  double us_per_step = 0, us_per_sequence_step = 0, messages_per_step = 0, allocations_per_step = 0;
};

row run(int batch, int tokens, const engine_options& eo, int forward_us, bool async) {
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::troupe_api>();
  cfg.add_message_types<caf::id_block::troupe>();
  configure_actor_scheduler(cfg, eo);
  caf::actor_system sys{cfg};
  // Steady decode: every request admitted and prefilled, none finished yet.
  const int64_t window_begin = std::min(16, tokens / 4), window_end = tokens - 8;
  auto backend = std::make_shared<cheap_backend>(window_begin, window_end, forward_us);
  auto bm = spawn_block_manager(sys, block_pool_options{1 << 16, 16, true, {}});
  scheduler_config sc;
  sc.limits.max_batch_size = batch;
  sc.limits.max_prefill_tokens = 1 << 20;
  sc.limits.block_seq_len = 16;
  sc.limits.num_blocks = 1 << 16;
  sc.max_concurrent_requests = batch;
  sc.max_queued_requests = batch;
  sc.vocab_size = 64;
  sc.async_scheduling = async;
  auto sched = spawn_scheduler(sys, sc, nullptr, bm, [&] { return spawn_executor(sys, backend); });
  event_hub hub(sys, sched);  // the engine's path: one sink for every request
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  for (int i = 0; i < batch; ++i) {
    generation_request r;
    r.prompt_ids = {3, 4, 5, 6, 7, 8, 9, 10};
    r.params.temperature = 0;
    r.params.max_tokens = tokens;
    r.params.ignore_eos = true;
    r.request_id = "bench-request-" + std::to_string(i);
    hub.submit(
        r,
        [&](const generation_event& ev) {
          if (ev.finish == finish_reason::none) return;
          std::lock_guard<std::mutex> l(mu);
          ++done;
          cv.notify_all();
        },
        [&](const error& e) {
          std::fprintf(stderr, "error: %s\n", e.message.c_str());
          std::lock_guard<std::mutex> l(mu);
          ++done;
          cv.notify_all();
        });
  }
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done == batch; });
  }
  caf::anon_send_exit(sched, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(bm, caf::exit_reason::user_shutdown);
  row out;
  out.batch = batch;
  const double steps = static_cast<double>(window_end - window_begin);
  const snapshot& a = backend->first;
  const snapshot& b = backend->last;
  out.us_per_step = std::chrono::duration<double, std::micro>(b.at - a.at).count() / steps;
  out.us_per_sequence_step = out.us_per_step / batch;
  out.messages_per_step = static_cast<double>(b.messages - a.messages) / steps;
  out.allocations_per_step = static_cast<double>(b.allocations - a.allocations) / steps;
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> batches;
  bool json = false;
  int tokens = 256, reps = 3, forward_us = 0;
  bool async = true;
  troupe::engine_options eo;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json")) json = true;
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = std::max(32, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--moderate-polls") && i + 1 < argc) eo.actor_moderate_polls = std::max(0, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--forward-us") && i + 1 < argc) forward_us = std::max(0, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--no-async")) async = false;
    else if (std::atoi(argv[i]) > 0) batches.push_back(std::atoi(argv[i]));
    else {
      std::fprintf(stderr, "usage: bench_scheduler_overhead [--json] [--reps N] [--tokens N] [--moderate-polls N] "
                           "[--forward-us N] [--no-async] [batch sizes...]\n");
      return 2;
    }
  }
  if (batches.empty()) batches = {1, 64, 256, 1024};
  std::vector<row> rows;
  for (int b : batches) {
    std::vector<double> us, msgs, allocs;
    for (int r = 0; r < reps; ++r) {
      const row x = run(b, tokens, eo, forward_us, async);
      us.push_back(x.us_per_step);
      msgs.push_back(x.messages_per_step);
      allocs.push_back(x.allocations_per_step);
    }
    row m;
    m.batch = b;
    m.us_per_step = median(us);
    m.us_per_sequence_step = m.us_per_step / b;
    m.messages_per_step = median(msgs);
    m.allocations_per_step = median(allocs);
    rows.push_back(m);
  }
  if (json) {
    std::printf("{\"async_scheduling\": %s, \"forward_us\": %d, \"rows\": [", async ? "true" : "false", forward_us);
    for (size_t i = 0; i < rows.size(); ++i)
      std::printf("%s{\"batch\": %d, \"us_per_step\": %.3f, \"us_per_sequence_step\": %.4f, \"messages_per_step\": %.2f, "
                  "\"allocations_per_step\": %.2f}",
                  i ? ", " : "", rows[i].batch, rows[i].us_per_step, rows[i].us_per_sequence_step,
                  rows[i].messages_per_step, rows[i].allocations_per_step);
    std::printf("]}\n");
    return 0;
  }
  std::printf("scheduler + block manager overhead per step (cheap executor: %d us per forward, async scheduling %s, "
              "%d tokens per request, steady decode, median of %d)\n", forward_us, async ? "on" : "off", tokens, reps);
  std::printf("%8s %12s %18s %14s %14s\n", "batch", "us/step", "us/sequence-step", "messages/step", "allocs/step");
  for (const row& r : rows)
    std::printf("%8d %12.1f %18.3f %14.2f %14.2f\n", r.batch, r.us_per_step, r.us_per_sequence_step,
                r.messages_per_step, r.allocations_per_step);
  return 0;
}
