// cpu_thread_pool: every task of every parallel_for runs exactly once and is finished when the call
// returns, across many back-to-back calls (workers spinning) and calls separated by enough work on
// the caller for the workers to park; destruction with parked or spinning workers returns.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <vector>

#include "runtime/cpu_thread_pool.h"

namespace troupe {
namespace {

TEST(cpu_thread_pool, every_task_runs_once_per_call_across_many_calls) {
  for (int threads : {2, 3}) {
    cpu_thread_pool pool(threads);
    std::vector<std::atomic<int>> hits(97);
    for (int call = 0; call < 3000; ++call) {
      const int64_t n = 1 + call % 97;
      pool.parallel_for(n, [&](int64_t t) { hits[t].fetch_add(1, std::memory_order_relaxed); });
      for (int64_t t = 0; t < 97; ++t) {
        ASSERT_EQ(hits[t].load(), t < n ? 1 : 0) << "call " << call << " task " << t;
        hits[t].store(0);
      }
    }
  }
}

TEST(cpu_thread_pool, calls_after_the_workers_have_parked_still_run_every_task) {
  cpu_thread_pool pool(2);
  std::atomic<int64_t> sum{0};
  for (int call = 0; call < 5; ++call) {
    // Busy for longer than the workers spin (~100 µs), so they park before the next call.
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
    while (std::chrono::steady_clock::now() < until) {
    }
    sum = 0;
    pool.parallel_for(64, [&](int64_t t) { sum += t; });
    EXPECT_EQ(sum.load(), 64 * 63 / 2);
  }
}

}  // namespace
}  // namespace troupe
