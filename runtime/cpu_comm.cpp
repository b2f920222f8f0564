// cpu_comm_group: an abortable, step-scoped all-reduce between threads (see cpu_comm.h).
// Per call: publish the buffer, barrier, each rank sums its slice of elements into sum_ in rank
// order, barrier, each rank copies sum_ back. sum_ is rewritten only after the next call's first
// barrier, which every rank passes only once it has finished copying.
#include "runtime/cpu_comm.h"

#include <algorithm>
#include <string>

namespace troupe {

cpu_comm_group::cpu_comm_group(int32_t world)
    : world_(std::max<int32_t>(1, world)), data_(static_cast<size_t>(world_)), count_(static_cast<size_t>(world_)) {}

status cpu_comm_group::step_ended(int64_t step_id) const {
  return make_error(errc::cancelled, "tensor-parallel step " + std::to_string(step_id) +
                                         " was aborted (another rank failed)");
}

bool cpu_comm_group::barrier(std::unique_lock<std::mutex>& lock, int64_t step_id) {
  const uint64_t gen = generation_;
  if (++arrived_ == world_) {
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
    return true;
  }
  cv_.wait(lock, [&] { return generation_ != gen || aborted_ || step_ != step_id; });
  if (step_ != step_id) return false;
  return generation_ != gen;  // passed, even if an abort came right after
}

status cpu_comm_group::all_reduce_sum(int32_t rank, int64_t step_id, float* data, int64_t n) {
  if (rank < 0 || rank >= world_) return make_error(errc::invalid_argument, "all_reduce: bad rank");
  if (world_ == 1) return ok_status();
  std::unique_lock<std::mutex> lock(mu_);
  if (step_id < step_) return step_ended(step_id);
  if (step_id > step_) {  // a new step: whoever still waits belonged to an abandoned one
    step_ = step_id;
    aborted_ = false;
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
  }
  if (aborted_) return step_ended(step_id);
  data_[static_cast<size_t>(rank)] = data;
  count_[static_cast<size_t>(rank)] = n;
  if (arrived_ + 1 == world_) {  // the last to arrive checks the sizes and sizes the sum
    for (int64_t c : count_)
      if (c != n) {
        aborted_ = true;
        cv_.notify_all();
        return make_error(errc::invalid_argument, "all_reduce: ranks disagree on the element count");
      }
    if (static_cast<int64_t>(sum_.size()) < n) sum_.resize(static_cast<size_t>(n));
  }
  if (!barrier(lock, step_id)) return step_ended(step_id);
  lock.unlock();
  const int64_t begin = n * rank / world_, end = n * (rank + 1) / world_;
  float* sum = sum_.data();
  std::copy(data_[0] + begin, data_[0] + end, sum + begin);
  for (int32_t r = 1; r < world_; ++r) {
    const float* src = data_[static_cast<size_t>(r)];
    for (int64_t i = begin; i < end; ++i) sum[i] += src[i];
  }
  lock.lock();
  if (!barrier(lock, step_id)) return step_ended(step_id);
  lock.unlock();
  std::copy(sum, sum + n, data);
  return ok_status();
}

int32_t cpu_comm_group::num_waiting() {
  std::lock_guard<std::mutex> lock(mu_);
  return arrived_;
}

void cpu_comm_group::abort(int64_t step_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (step_id < step_) return;  // that step is over
  step_ = step_id;
  aborted_ = true;
  arrived_ = 0;
  cv_.notify_all();
}

}  // namespace troupe
