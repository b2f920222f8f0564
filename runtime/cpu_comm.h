// The CPU all-reduce of tensor parallelism: the ranks are executor threads of one process sharing
// a cpu_comm_group. Every rank gets bit-identical sums (each element is added in rank order 0..W-1
// by one rank, then copied to all), so the replicated residual stream stays identical on all ranks.
//
// Design note: collectives belong to a forward step (its step id). A rank that fails mid-step
// must not leave the others waiting forever: abort(step) wakes every rank waiting in that step
// with an error, and a rank arriving with a newer step id ends the older step the same way. So a
// failed step fails on every rank, and the next step starts clean without rebuilding the group.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "config/error.h"

namespace troupe {

class cpu_comm_group {
 public:
  explicit cpu_comm_group(int32_t world);

  int32_t world() const { return world_; }

  // Sums data[0, n) over all ranks in place. Every rank calls it with the same step id and n, in the
  // same order. Fails (errc::cancelled) when the step was aborted or superseded, invalid_argument
  // when the ranks disagree on n.
  status all_reduce_sum(int32_t rank, int64_t step_id, float* data, int64_t n);

  // Fails every rank waiting in (or later entering) a collective of `step_id`.
  void abort(int64_t step_id);

  // Ranks waiting at the current barrier (for tests: a rank is blocked in a collective).
  int32_t num_waiting();

 private:
  // Waits until all ranks of the current step arrived; false if the step ended first.
  bool barrier(std::unique_lock<std::mutex>& lock, int64_t step_id);
  status step_ended(int64_t step_id) const;

  const int32_t world_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t step_ = -1;        // the step whose collectives run now
  bool aborted_ = false;     // the current step was aborted
  int32_t arrived_ = 0;      // ranks waiting at the barrier
  uint64_t generation_ = 0;  // completed barriers
  std::vector<float*> data_;    // [world] each rank's buffer
  std::vector<int64_t> count_;  // [world] each rank's n
  std::vector<float> sum_;      // [n] the reduced values
};

}  // namespace troupe
