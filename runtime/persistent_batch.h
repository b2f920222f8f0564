// The executor's persistent batch (vLLM v1's InputBatch idea): per running sequence its block-table
// row, position, last token and sampler, kept across steps so that a step message carries only what
// changed (step_batch::delta: new sequences, appended block ids, removed ids). apply() is the only
// mutator; in steady decode it allocates nothing (rows and buffers are reused, removal compacts).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "config/error.h"
#include "runtime/step_batch.h"

namespace troupe {

class sampler;

class persistent_batch {
 public:
  // Reserves `rows` rows of `blocks_per_row` ids (a row grows past it by re-laying out the table;
  // a device backend bounds it by its own max_blocks_per_seq when it validates).
  explicit persistent_batch(int64_t rows = 64, int64_t blocks_per_row = 16);

  // Design note: applies `batch` in this order — `reset` clears everything; `removed` rows go
  // (the last row moves into the hole, so rows stay dense); then each seq_step either starts its
  // row afresh (new_seq: new, or resumed after preemption, or a prefix-cache hit starting with
  // cached blocks) or appends its block ids to the row it has. Then batch.tables points at the
  // tables for forward(). A delta that does not fit what this batch holds (an append to an unknown
  // sequence, a start_pos other than the row's position, a sequence twice) is an error and clears
  // the batch: the step fails and the scheduler resends everything with the next step.
  // A batch that is not a delta (tests, direct callers) passes untouched. A seq_step with
  // feed_sampled gets the token record_sampled() kept for its row in tokens[0] (none kept: an error).
  status apply(step_batch& batch);
  // After forward_sampled: keeps each sampled sequence's token for a later step that feeds it
  // (async scheduling plans that step before the scheduler has seen the token). `batch` is the
  // step apply() just prepared.
  void record_sampled(const step_batch& batch, const step_logits& out);

  int64_t num_rows() const { return static_cast<int64_t>(ids_.size()); }
  int32_t row_of(int64_t seq_id) const;  // -1: not held
  int64_t seq_id(int32_t row) const { return ids_[static_cast<size_t>(row)]; }
  std::span<const int32_t> table(int32_t row) const {
    return {tables_.data() + static_cast<int64_t>(row) * stride_, static_cast<size_t>(len_[static_cast<size_t>(row)])};
  }
  int32_t position(int32_t row) const { return pos_[static_cast<size_t>(row)]; }   // tokens in KV after the last step
  int32_t last_token(int32_t row) const { return last_[static_cast<size_t>(row)]; }
  int32_t sampled_token(int32_t row) const { return sampled_[static_cast<size_t>(row)]; }  // -1: none yet
  const std::shared_ptr<sampler>& sampling(int32_t row) const { return samplers_[static_cast<size_t>(row)]; }

 private:
  void clear();
  void remove(int64_t seq_id);
  int32_t add_row(int64_t seq_id);
  void append(int32_t row, std::span<const int32_t> ids);
  void mark_dirty(int32_t row, int32_t from);
  void drop_dirty(int32_t row);
  void begin_step();
  status fail(const std::string& why);

  int64_t stride_ = 0;               // ids per row in tables_
  int64_t capacity_ = 0;             // rows tables_ holds
  std::vector<int32_t> tables_;      // [capacity_, stride_] row-major; row r's ids in [0, len_[r])
  std::vector<int64_t> ids_;         // [num_rows] sequence id of each row
  std::vector<int32_t> len_;         // [capacity_] ids in each row
  std::vector<int32_t> pos_;         // [num_rows] position after the last step (next start_pos)
  std::vector<int32_t> last_;        // [num_rows] last token fed
  std::vector<int32_t> sampled_;     // [num_rows] last token sampled here (record_sampled), -1: none
  std::vector<uint64_t> seen_;       // [num_rows] the apply() that last named the row (duplicates)
  std::vector<std::shared_ptr<sampler>> samplers_;  // [num_rows]
  std::unordered_map<int64_t, int32_t> row_of_;     // sequence id -> row
  std::vector<int32_t> step_rows_;   // [seqs] the row of each seq of the current step
  std::vector<int32_t> dirty_;       // rows changed since the previous view
  std::vector<int32_t> dirty_from_;  // [dirty_] first changed column
  std::vector<int32_t> dirty_slot_;  // [capacity_] index into dirty_, -1: clean
  uint64_t applies_ = 0;
};

}  // namespace troupe
