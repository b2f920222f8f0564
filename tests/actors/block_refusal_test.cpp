// A block manager that keeps failing (--fault-inject refuse_blocks_*, the real block manager actor):
// a request waiting for blocks is retried a bounded number of times, then fails with a clear error,
// and the scheduler's stats (exported on /metrics) count the failed allocations and requests.
// A few refusals below the bound are still retried until the request is served.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <optional>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/block_manager_actor.h"
#include "actors/executor_actor.h"
#include "actors/scheduler_actor.h"
#include "actors/sink_actor.h"
#include "support/fixture_model.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

constexpr int32_t k_blocks = 64;
constexpr int32_t k_max_alloc_failures = 5;

struct outcome {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  finish_reason finish = finish_reason::none;
  std::optional<error> failure;
  bool wait(std::chrono::milliseconds t) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, t, [&] { return done; });
  }
};

// Allocation requests after the first `refuse_after` are refused, `refuse_count` of them (-1: all).
struct refusing_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<model_backend> backend = testing::fixture_backend("tiny-llama", k_blocks, 16);
  block_manager_actor bm;
  scheduler_actor sched;
  executor_actor exec;

  refusing_system(int32_t refuse_after, int32_t refuse_count) {
    cfg.add_message_types<caf::id_block::troupe_api>();
    cfg.add_message_types<caf::id_block::troupe>();
    sys = std::make_unique<caf::actor_system>(cfg);
    fault_inject_options faults;
    faults.refuse_blocks_after = refuse_after;
    faults.refuse_blocks_count = refuse_count;
    bm = spawn_block_manager(*sys, block_pool_options{k_blocks, 16, true, {}}, faults);
    scheduler_config sc;
    sc.limits.max_batch_size = 8;
    sc.limits.max_prefill_tokens = 256;
    sc.limits.block_seq_len = 16;
    sc.limits.num_blocks = k_blocks;
    sc.limits.session_len = 1024;
    sc.max_concurrent_requests = 4;
    sc.max_queued_requests = 4;
    sc.vocab_size = 512;
    sc.eos_ids = {2};
    sc.max_alloc_failures = k_max_alloc_failures;
    sched = spawn_scheduler(*sys, sc, nullptr, bm, [this] { return exec = spawn_executor(*sys, backend); });
  }

  ~refusing_system() {
    anon_send_exit(sched, caf::exit_reason::user_shutdown);
    anon_send_exit(bm, caf::exit_reason::user_shutdown);
    exec = nullptr;
    sched = nullptr;
    bm = nullptr;
    sys.reset();
  }

  // A three-token prompt and four tokens: one block, so one (non-empty) allocation per request.
  std::shared_ptr<outcome> submit() {
    auto out = std::make_shared<outcome>();
    generation_request r;
    r.prompt_ids = {1, 2, 3};
    r.params.temperature = 0;
    r.params.max_tokens = 4;
    r.params.ignore_eos = true;
    spawn_sink(
        *sys, sched, r,
        [out](const generation_event& ev) {
          if (ev.finish == finish_reason::none) return;
          std::lock_guard<std::mutex> l(out->mu);
          out->finish = ev.finish;
          out->done = true;
          out->cv.notify_all();
        },
        [out](const error& e) {
          std::lock_guard<std::mutex> l(out->mu);
          out->failure = e;
          out->done = true;
          out->cv.notify_all();
        },
        30s);
    return out;
  }

  engine_stats stats() {
    caf::scoped_actor self{*sys};
    engine_stats s;
    self->request(sched, 5s, stats_atom_v).receive([&](engine_stats& x) { s = x; }, [&](caf::error& e) {
      ADD_FAILURE() << "stats: " << caf::to_string(e);
    });
    return s;
  }
};

TEST(block_refusal, a_block_manager_that_keeps_refusing_fails_the_waiting_request_after_bounded_tries) {
  refusing_system s(1, -1);  // the first allocation is served, every later one refused
  auto first = s.submit();
  ASSERT_TRUE(first->wait(20s));
  EXPECT_FALSE(first->failure);
  EXPECT_EQ(first->finish, finish_reason::length);

  // Before the bound existed this request was retried every 5 ms forever: the wait timed out.
  auto second = s.submit();
  ASSERT_TRUE(second->wait(20s)) << "a request waiting on a refusing block manager never ended";
  ASSERT_TRUE(second->failure);
  EXPECT_EQ(second->failure->code, errc::out_of_memory);
  EXPECT_NE(second->failure->message.find("failed 5 allocations in a row"), std::string::npos)
      << second->failure->message;
  EXPECT_NE(second->failure->message.find("fault injection"), std::string::npos) << second->failure->message;

  const engine_stats st = s.stats();
  EXPECT_EQ(st.num_alloc_failures, k_max_alloc_failures);  // one per try, and no try after giving up
  EXPECT_EQ(st.num_alloc_failed_requests, 1);
  EXPECT_EQ(st.num_requests_running, 0);
  EXPECT_EQ(st.num_blocks_used, 0);
}

TEST(block_refusal, refusals_below_the_bound_are_retried_until_served) {
  refusing_system s(1, k_max_alloc_failures - 1);
  ASSERT_TRUE(s.submit()->wait(20s));
  auto retried = s.submit();
  ASSERT_TRUE(retried->wait(20s));
  EXPECT_FALSE(retried->failure) << retried->failure->message;
  EXPECT_EQ(retried->finish, finish_reason::length);
  const engine_stats st = s.stats();
  EXPECT_EQ(st.num_alloc_failures, k_max_alloc_failures - 1);
  EXPECT_EQ(st.num_alloc_failed_requests, 0);
}

}  // namespace
}  // namespace troupe
