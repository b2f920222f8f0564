// The scheduler's half of the persistent batch (runtime/persistent_batch.h): what the executors
// already hold of each sequence, so that a step carries only what changed — a sequence's appended
// block ids (all of them when the executors hold nothing of it) and the ids that left since.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "runtime/step_batch.h"

namespace troupe {

// Per sequence: how many of its block ids the executors hold, as of which generation.
struct sent_table {
  uint64_t generation = 0;  // the tracker's generation when last sent; older: the executors hold nothing
  int32_t num_blocks = 0;
};

class step_delta_tracker {
 public:
  // Fills ss.block_table with the ids the executors lack; a sequence they do not hold is new_seq.
  void fill(sent_table& sent, const std::vector<int32_t>& blocks, seq_step& ss) {
    const bool held = sent.generation == generation_ && static_cast<size_t>(sent.num_blocks) <= blocks.size();
    ss.new_seq = !held;
    ss.block_table.assign(blocks.begin() + (held ? sent.num_blocks : 0), blocks.end());
    sent = {generation_, static_cast<int32_t>(blocks.size())};
  }
  // The sequence left the running batch (finished, preempted, failed): the next step removes it.
  void forget(sent_table& sent, int64_t seq_id) {
    if (sent.generation == generation_) removed_.push_back(seq_id);
    sent = {};
  }
  // The executors lost their batch (restarted) or may not have applied the last step (it failed):
  // the next step resets them and carries every sequence's whole table.
  void resend_all() {
    ++generation_;
    removed_.clear();
    reset_ = true;
  }
  // The next step resets the executors (they hold no sampled token to feed).
  bool reset_pending() const { return reset_; }
  // Marks `b` a delta and moves the pending reset and removals into it.
  void seal(step_batch& b) {
    b.delta = true;
    b.reset = std::exchange(reset_, false);
    if (!removed_.empty()) b.removed.assign(removed_.begin(), removed_.end());
    removed_.clear();
  }

 private:
  uint64_t generation_ = 1;
  bool reset_ = true;  // a fresh executor holds nothing
  std::vector<int64_t> removed_;
};

}  // namespace troupe
