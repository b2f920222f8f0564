// The executor's persistent batch (see persistent_batch.h). Rows are dense: row r < num_rows()
// always holds a live sequence; removal moves the last row into the hole and marks it dirty, so a
// device copy of the tables indexed by row stays right after patching the dirty rows only.
#include "runtime/persistent_batch.h"

#include <algorithm>
#include <string>

namespace troupe {

persistent_batch::persistent_batch(int64_t rows, int64_t blocks_per_row)
    : stride_(std::max<int64_t>(1, blocks_per_row)), capacity_(std::max<int64_t>(1, rows)) {
  tables_.resize(static_cast<size_t>(capacity_ * stride_));
  len_.assign(static_cast<size_t>(capacity_), 0);
  dirty_slot_.assign(static_cast<size_t>(capacity_), -1);
  const auto cap = static_cast<size_t>(capacity_);
  ids_.reserve(cap);
  pos_.reserve(cap);
  last_.reserve(cap);
  sampled_.reserve(cap);
  seen_.reserve(cap);
  samplers_.reserve(cap);
  step_rows_.reserve(cap);
  dirty_.reserve(cap);
  dirty_from_.reserve(cap);
  row_of_.reserve(cap);
}

int32_t persistent_batch::row_of(int64_t seq_id) const {
  auto it = row_of_.find(seq_id);
  return it == row_of_.end() ? -1 : it->second;
}

void persistent_batch::clear() {
  for (size_t r = 0; r < ids_.size(); ++r) len_[r] = 0;
  ids_.clear();
  pos_.clear();
  last_.clear();
  sampled_.clear();
  seen_.clear();
  samplers_.clear();
  row_of_.clear();
  begin_step();
}

// The view of the previous step has been used: its dirty marks go.
void persistent_batch::begin_step() {
  for (int32_t r : dirty_) dirty_slot_[static_cast<size_t>(r)] = -1;
  dirty_.clear();
  dirty_from_.clear();
}

void persistent_batch::mark_dirty(int32_t row, int32_t from) {
  int32_t& slot = dirty_slot_[static_cast<size_t>(row)];
  if (slot >= 0) {
    dirty_from_[static_cast<size_t>(slot)] = std::min(dirty_from_[static_cast<size_t>(slot)], from);
    return;
  }
  slot = static_cast<int32_t>(dirty_.size());
  dirty_.push_back(row);
  dirty_from_.push_back(from);
}

// A row that no longer exists leaves the dirty list (the list's last entry takes its place).
void persistent_batch::drop_dirty(int32_t row) {
  int32_t& slot = dirty_slot_[static_cast<size_t>(row)];
  if (slot < 0) return;
  const auto s = static_cast<size_t>(slot);
  dirty_[s] = dirty_.back();
  dirty_from_[s] = dirty_from_.back();
  dirty_slot_[static_cast<size_t>(dirty_[s])] = slot;
  dirty_.pop_back();
  dirty_from_.pop_back();
  slot = -1;
}

void persistent_batch::remove(int64_t seq_id) {
  auto it = row_of_.find(seq_id);
  if (it == row_of_.end()) return;  // never sent, or gone with a reset
  const int32_t r = it->second;
  row_of_.erase(it);
  const auto last = static_cast<int32_t>(ids_.size()) - 1;
  drop_dirty(r);
  if (r != last) {
    const auto rs = static_cast<size_t>(r), ls = static_cast<size_t>(last);
    std::copy_n(tables_.data() + last * stride_, len_[ls], tables_.data() + r * stride_);
    len_[rs] = len_[ls];
    ids_[rs] = ids_[ls];
    pos_[rs] = pos_[ls];
    last_[rs] = last_[ls];
    sampled_[rs] = sampled_[ls];
    seen_[rs] = seen_[ls];
    samplers_[rs] = std::move(samplers_[ls]);
    row_of_[ids_[rs]] = r;
    drop_dirty(last);
    mark_dirty(r, 0);  // the device's copy of row r is another sequence's
  }
  len_[static_cast<size_t>(last)] = 0;
  ids_.pop_back();
  pos_.pop_back();
  last_.pop_back();
  sampled_.pop_back();
  seen_.pop_back();
  samplers_.pop_back();
}

int32_t persistent_batch::add_row(int64_t seq_id) {
  const auto r = static_cast<int32_t>(ids_.size());
  if (r == capacity_) {  // grows by doubling: amortized, and never in steady decode
    capacity_ *= 2;
    tables_.resize(static_cast<size_t>(capacity_ * stride_));
    len_.resize(static_cast<size_t>(capacity_), 0);
    dirty_slot_.resize(static_cast<size_t>(capacity_), -1);
  }
  ids_.push_back(seq_id);
  pos_.push_back(0);
  last_.push_back(-1);
  sampled_.push_back(-1);
  seen_.push_back(0);
  samplers_.emplace_back();
  len_[static_cast<size_t>(r)] = 0;
  row_of_.emplace(seq_id, r);
  return r;
}

void persistent_batch::append(int32_t row, std::span<const int32_t> ids) {
  if (ids.empty()) return;
  const auto rs = static_cast<size_t>(row);
  const int64_t need = len_[rs] + static_cast<int64_t>(ids.size());
  if (need > stride_) {  // a longer sequence than any so far: re-lay out every row at a wider stride
    const int64_t stride = std::max(need, 2 * stride_);
    std::vector<int32_t> wider(static_cast<size_t>(capacity_ * stride));
    for (size_t r = 0; r < ids_.size(); ++r)
      std::copy_n(tables_.data() + static_cast<int64_t>(r) * stride_, len_[r], wider.data() + static_cast<int64_t>(r) * stride);
    tables_.swap(wider);
    stride_ = stride;
  }
  std::copy(ids.begin(), ids.end(), tables_.data() + row * stride_ + len_[rs]);
  mark_dirty(row, len_[rs]);
  len_[rs] = static_cast<int32_t>(need);
}

status persistent_batch::fail(const std::string& why) {
  clear();
  return make_error(errc::internal, "the executor's persistent batch: " + why + " (it is rebuilt with the next step)");
}

status persistent_batch::apply(step_batch& batch) {
  if (!batch.delta) return ok_status();
  ++applies_;
  begin_step();
  if (batch.reset) clear();
  for (int64_t id : batch.removed) remove(id);
  step_rows_.resize(batch.seqs.size());
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    seq_step& s = batch.seqs[i];
    int32_t r = row_of(s.seq_id);
    if (s.new_seq) {
      if (r < 0) {
        r = add_row(s.seq_id);
      } else {  // restarted without a removal in between: its old table is void
        len_[static_cast<size_t>(r)] = 0;
        sampled_[static_cast<size_t>(r)] = -1;
        mark_dirty(r, 0);
      }
    } else if (r < 0) {
      return fail("step " + std::to_string(batch.step_id) + " appends to sequence " + std::to_string(s.seq_id) +
                  ", which it does not hold");
    } else if (s.start_pos != pos_[static_cast<size_t>(r)]) {
      return fail("sequence " + std::to_string(s.seq_id) + " resumes at position " + std::to_string(s.start_pos) +
                  " but its KV cache ends at " + std::to_string(pos_[static_cast<size_t>(r)]));
    }
    const auto rs = static_cast<size_t>(r);
    if (seen_[rs] == applies_) return fail("sequence " + std::to_string(s.seq_id) + " appears twice in one step");
    seen_[rs] = applies_;
    if (s.feed_sampled) {
      if (s.new_seq || s.tokens.empty() || sampled_[rs] < 0)
        return fail("step " + std::to_string(batch.step_id) + " feeds sequence " + std::to_string(s.seq_id) +
                    " a token this executor never sampled for it");
      s.tokens[0] = sampled_[rs];
      s.feed_sampled = false;  // the token is in: the backend sees an ordinary step
    }
    append(r, s.block_table);
    pos_[rs] = s.start_pos + static_cast<int32_t>(s.tokens.size());
    if (!s.tokens.empty()) last_[rs] = s.tokens.back();
    if (s.sampling) samplers_[rs] = s.sampling;
    step_rows_[i] = r;
  }
  block_table_view& v = batch.tables;
  v.data = tables_.data();
  v.stride = stride_;
  v.num_rows = num_rows();
  v.len = len_.data();
  v.row_of = step_rows_.data();
  v.dirty = dirty_.data();
  v.dirty_from = dirty_from_.data();
  v.num_dirty = static_cast<int64_t>(dirty_.size());
  return ok_status();
}

void persistent_batch::record_sampled(const step_batch& batch, const step_logits& out) {
  if (!batch.tables.row_of) return;  // not a delta: nothing held
  for (const sampled_seq& t : out.sampled) {
    if (t.seq < 0 || static_cast<size_t>(t.seq) >= batch.seqs.size()) continue;
    const int32_t r = batch.tables.row_of[t.seq];
    if (r >= 0 && r < num_rows()) sampled_[static_cast<size_t>(r)] = t.token.token;
  }
}

}  // namespace troupe
