// cpu_thread_pool: workers spin briefly on an atomic generation counter between parallel_for calls
// (a decode step issues ~150 of them a few tens of microseconds apart, and a condition-variable
// sleep and wake costs about as much as the op), then park on a condition variable so an idle
// server uses no CPU. Tasks come from one atomic counter.
#include "runtime/cpu_thread_pool.h"

#include <immintrin.h>

namespace troupe {
namespace {

// About 50-100 µs of pause instructions: longer than the gap between two ops of one step, far
// shorter than the gap between steps of an idle server.
constexpr int spin_iterations = 4096;

}  // namespace

cpu_thread_pool::cpu_thread_pool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (num_threads <= 0) num_threads = 1;
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

cpu_thread_pool::~cpu_thread_pool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void cpu_thread_pool::run_tasks() {
  for (;;) {
    int64_t t = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (t >= num_tasks_) return;
    (*fn_)(t);
  }
}

void cpu_thread_pool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    bool started = false;
    for (int i = 0; i < spin_iterations && !started; ++i) {
      if (generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_acquire)) started = true;
      else _mm_pause();
    }
    if (!started) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1);  // seq_cst: pairs with parallel_for's generation bump (no lost wake-up)
      start_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_tasks();
    if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // the caller may be between its check and its wait
      done_cv_.notify_one();
    }
  }
}

void cpu_thread_pool::parallel_for(int64_t num_tasks, const std::function<void(int64_t)>& fn) {
  if (num_tasks <= 0) return;
  if (workers_.empty() || num_tasks == 1) {
    for (int64_t t = 0; t < num_tasks; ++t) fn(t);
    return;
  }
  fn_ = &fn;
  num_tasks_ = num_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  busy_workers_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: publishes the fields above
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mutex_); }
    start_cv_.notify_all();
  }
  run_tasks();
  for (int i = 0; i < spin_iterations; ++i) {
    if (busy_workers_.load(std::memory_order_acquire) == 0) {
      fn_ = nullptr;
      return;
    }
    _mm_pause();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [&] { return busy_workers_.load(std::memory_order_acquire) == 0; });
  fn_ = nullptr;
}

}  // namespace troupe
