// What the scheduler and block manager cost per step, without model compute: an executor whose
// forward pass only fills logits rows, B concurrent requests decoding in lock step. Prints the
// median time per step and per sequence-step at each batch size.
//   bench_scheduler_overhead [batch sizes...]   (default: 1 64 256)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "actors/block_manager_actor.h"
#include "actors/executor_actor.h"
#include "actors/scheduler_actor.h"
#include "actors/sink_actor.h"

namespace {

using namespace troupe;
using clock_type = std::chrono::steady_clock;

// Logits that always pick token 1; vocab 64 keeps sampling negligible.
class cheap_backend : public model_backend {
 public:
  cheap_backend() {
    cfg_.architecture = "llama";
    cfg_.vocab_size = 64;
  }
  const model_config& config() const override { return cfg_; }
  int64_t num_kv_blocks() const override { return 1 << 16; }
  int64_t block_seq_len() const override { return 16; }
  status forward(const step_batch& b, step_logits& out) override {
    out.vocab_size = cfg_.vocab_size;
    out.row_seq.clear();
    out.data.assign(b.seqs.size() * cfg_.vocab_size, 0.0f);
    for (size_t i = 0; i < b.seqs.size(); ++i) {
      out.row_seq.push_back(static_cast<int32_t>(i));
      out.data[i * cfg_.vocab_size + 1] = 1.0f;
    }
    steps.fetch_add(1);
    return ok_status();
  }
  std::atomic<int64_t> steps{0};

 private:
  model_config cfg_;
};

double run(int batch, int tokens) {
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::troupe_api>();
  cfg.add_message_types<caf::id_block::troupe>();
  caf::actor_system sys{cfg};
  auto backend = std::make_shared<cheap_backend>();
  auto bm = spawn_block_manager(sys, block_pool_options{1 << 16, 16, true, {}});
  scheduler_config sc;
  sc.limits.max_batch_size = batch;
  sc.limits.max_prefill_tokens = 1 << 20;
  sc.limits.block_seq_len = 16;
  sc.limits.num_blocks = 1 << 16;
  sc.max_concurrent_requests = batch;
  sc.max_queued_requests = batch;
  sc.vocab_size = 64;
  auto sched = spawn_scheduler(sys, sc, nullptr, bm, [&] { return spawn_executor(sys, backend); });
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  const auto t0 = clock_type::now();
  for (int i = 0; i < batch; ++i) {
    generation_request r;
    r.prompt_ids = {3, 4, 5, 6, 7, 8, 9, 10};
    r.params.temperature = 0;
    r.params.max_tokens = tokens;
    r.params.ignore_eos = true;
    spawn_sink(
        sys, sched, r,
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
        },
        std::chrono::seconds(60));
  }
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done == batch; });
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  const double per_step = secs / static_cast<double>(backend->steps.load());
  caf::anon_send_exit(sched, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(bm, caf::exit_reason::user_shutdown);
  return per_step;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> batches;
  for (int i = 1; i < argc; ++i) batches.push_back(std::atoi(argv[i]));
  if (batches.empty()) batches = {1, 64, 256};
  const int tokens = 256, reps = 5;
  std::printf("scheduler + block manager overhead per step (cheap executor, %d tokens per request, median of %d)\n",
              tokens, reps);
  std::printf("%8s %14s %20s %12s\n", "batch", "us/step", "us/sequence-step", "steps/s");
  for (int b : batches) {
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) t.push_back(run(b, tokens));
    std::sort(t.begin(), t.end());
    const double med = t[t.size() / 2];
    std::printf("%8d %14.1f %20.2f %12.0f\n", b, med * 1e6, med * 1e6 / b, 1.0 / med);
  }
  return 0;
}
