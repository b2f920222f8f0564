// cpu_thread_pool: workers spin briefly on an atomic generation counter between parallel_for calls
// (a decode step issues ~150 of them a few tens of microseconds apart, and a condition-variable
// sleep and wake costs about as much as the op), then park on a condition variable so an idle
// server uses no CPU. Tasks come from one atomic counter, and a call ends when its tasks are done,
// not when every worker has checked in: a worker that the OS has not scheduled yet would otherwise
// stall every op of a step for its time slice (measured: 2 threads 3-6x slower than 1 on the
// loaded 2-core machine). A late worker must then not run into the next call's fields while the
// caller rewrites them: it enters (inside_) before it looks (open_), and the caller closes the
// call and waits for inside_ to drain before reusing them. Both sides use seq_cst, so either the
// caller sees the worker inside or the worker sees the call closed.
#include "runtime/cpu_thread_pool.h"

#include <immintrin.h>

namespace troupe {
namespace {

// About 50-100 µs of pause instructions: longer than the gap between two ops of one step, far
// shorter than the gap between steps of an idle server.
constexpr int spin_iterations = 4096;

// Claims the next index at the front (or the back) of a run; -1 when the run is used up.
int64_t claim(std::atomic<uint64_t>& bounds, bool front) {
  uint64_t v = bounds.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t f = v >> 32, b = v & 0xffffffffu;
    if (f >= b) return -1;
    const uint64_t next = front ? ((f + 1) << 32) | b : (f << 32) | (b - 1);
    if (bounds.compare_exchange_weak(v, next, std::memory_order_relaxed)) return static_cast<int64_t>(front ? f : b - 1);
  }
}

}  // namespace

cpu_thread_pool::cpu_thread_pool(int num_threads, std::function<void()> worker_gate)
    : worker_gate_(std::move(worker_gate)) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (num_threads <= 0) num_threads = 1;
  runs_ = std::make_unique<run[]>(static_cast<size_t>(num_threads));
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
    if (done_tasks_.fetch_add(1) + 1 == num_tasks_ && caller_parked_.load()) {
      std::lock_guard<std::mutex> lock(mutex_);  // the caller may be between its check and its wait
      done_cv_.notify_one();
    }
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
    seen = generation_.load();
    if (worker_gate_) worker_gate_();
    inside_.fetch_add(1);
    if (open_.load()) run_tasks();  // open: the fields are a live call's until this worker leaves
    inside_.fetch_sub(1);
  }
}

void cpu_thread_pool::parallel_for(int64_t num_tasks, const std::function<void(int64_t)>& fn) {
  if (num_tasks <= 0) return;
  if (workers_.empty() || num_tasks == 1) {
    for (int64_t t = 0; t < num_tasks; ++t) fn(t);
    return;
  }
  // No worker is inside (the previous call drained them), so the fields are the caller's to set.
  fn_ = &fn;
  num_tasks_ = num_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  done_tasks_.store(0, std::memory_order_relaxed);
  open_.store(true);  // seq_cst: publishes the fields above, before the workers look
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mutex_); }
    start_cv_.notify_all();
  }
  run_tasks();
  bool done = false;
  for (int i = 0; i < spin_iterations && !done; ++i) {
    if (done_tasks_.load(std::memory_order_acquire) == num_tasks) done = true;
    else _mm_pause();
  }
  if (!done) {  // a worker is still inside a task
    std::unique_lock<std::mutex> lock(mutex_);
    caller_parked_.store(true);
    done_cv_.wait(lock, [&] { return done_tasks_.load() == num_tasks; });
    caller_parked_.store(false);
  }
  open_.store(false);
  // Workers that entered before the close leave at once (no task is left to claim).
  while (inside_.load() != 0) std::this_thread::yield();
  fn_ = nullptr;
}

void cpu_thread_pool::parallel_for_contiguous(int64_t num_tasks, const std::function<void(int64_t)>& fn) {
  const int64_t threads = num_threads();
  if (threads == 1 || num_tasks <= 1 || num_tasks >= (int64_t{1} << 32)) return parallel_for(num_tasks, fn);
  for (int64_t r = 0; r < threads; ++r)  // the runs are published by parallel_for's open_ store
    runs_[r].bounds.store(static_cast<uint64_t>(r * num_tasks / threads) << 32 |
                              static_cast<uint64_t>((r + 1) * num_tasks / threads),
                          std::memory_order_relaxed);
  parallel_for(threads, [&](int64_t home) {
    for (int64_t t; (t = claim(runs_[home].bounds, true)) >= 0;) fn(t);
    for (int64_t o = 1; o < threads; ++o)
      for (int64_t t; (t = claim(runs_[(home + o) % threads].bounds, false)) >= 0;) fn(t);
  });
}

}  // namespace troupe
