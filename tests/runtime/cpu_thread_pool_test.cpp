// cpu_thread_pool: every task of every parallel_for runs exactly once and is finished when the call
// returns, across many back-to-back calls (workers spinning) and calls separated by enough work on
// the caller for the workers to park; destruction with parked or spinning workers returns; a call
// returns while a worker is held back from joining (the caller runs its share), and a worker that
// joins late runs no task twice and none of a finished call; parallel_for_contiguous runs every
// task once, and a thread alone walks its own run forwards, then the other's from the back.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
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

TEST(cpu_thread_pool, a_call_returns_without_waiting_for_a_worker_that_has_not_joined) {
  std::atomic<bool> release{false};
  std::atomic<int> held{0};
  cpu_thread_pool pool(2, [&] {
    held.fetch_add(1);
    while (!release.load()) std::this_thread::yield();
  });
  std::vector<std::atomic<int>> hits(16);
  std::atomic<int> calls{0};
  auto call = std::async(std::launch::async, [&] {
    // Calls until the worker has woken into the gate (deadline 10 s), then 50 more while it is held.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (int after = 0; after < 50; after += held.load() > 0) {
      if (held.load() == 0 && std::chrono::steady_clock::now() > deadline) break;
      pool.parallel_for(16, [&](int64_t t) { hits[t].fetch_add(1); });
      calls.fetch_add(1);
    }
  });
  const bool returned = call.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  const bool worker_was_held = held.load() > 0;
  release = true;  // lets the worker go, so a failing run still ends
  call.wait();
  ASSERT_TRUE(returned) << "parallel_for waited for a worker held outside the call";
  EXPECT_TRUE(worker_was_held);
  for (auto& h : hits) EXPECT_EQ(h.load(), calls.load());
  // The late worker joins the calls that follow and every task still runs exactly once.
  for (int c = 0; c < 200; ++c) {
    for (auto& h : hits) h = 0;
    pool.parallel_for(16, [&](int64_t t) { hits[t].fetch_add(1); });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

TEST(cpu_thread_pool, contiguous_runs_every_task_once_per_call) {
  for (int threads : {2, 3}) {
    cpu_thread_pool pool(threads);
    std::vector<std::atomic<int>> hits(97);
    for (int call = 0; call < 3000; ++call) {
      const int64_t n = 1 + call % 97;
      pool.parallel_for_contiguous(n, [&](int64_t t) { hits[t].fetch_add(1, std::memory_order_relaxed); });
      for (int64_t t = 0; t < 97; ++t) {
        ASSERT_EQ(hits[t].load(), t < n ? 1 : 0) << "threads " << threads << " call " << call << " task " << t;
        hits[t].store(0);
      }
    }
  }
}

TEST(cpu_thread_pool, contiguous_alone_walks_its_run_then_steals_the_other_from_the_back) {
  std::atomic<bool> release{false};
  std::atomic<int> held{0};
  cpu_thread_pool pool(2, [&] {
    held.fetch_add(1);
    while (!release.load()) std::this_thread::yield();
  });
  std::vector<int64_t> order;
  auto call = std::async(std::launch::async, [&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (held.load() == 0 && std::chrono::steady_clock::now() < deadline) pool.parallel_for(2, [](int64_t) {});
    pool.parallel_for_contiguous(10, [&](int64_t t) { order.push_back(t); });  // the caller alone
  });
  const bool returned = call.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  const bool worker_was_held = held.load() > 0;
  release = true;
  call.wait();
  ASSERT_TRUE(returned);
  ASSERT_TRUE(worker_was_held);
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4, 9, 8, 7, 6, 5}));
}

}  // namespace
}  // namespace troupe
