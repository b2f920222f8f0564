// cuda_model's step input: the step's checks, and the persistent device block table. Design note:
// the table lives at buf_.meta + tables_off_ ([max_batch_size, max_blocks_per_seq_] block ids) and
// keeps the rows of the executor's persistent batch (runtime/persistent_batch.h) across steps: a
// serving step uploads only the rows its view marks dirty, from the columns that changed, through
// the pinned mirror at host_meta_ + tables_off_. A whole batch (tests, warm-up, a view with more
// rows than the table) is written into rows 0..n-1 and leaves the table unsynced, so the next view
// uploads every row it has.
#include <algorithm>
#include <string>

#include "kernels/cuda_model.h"

namespace troupe {

// A bad step fails before it touches the device.
status cuda_model::validate(const step_batch& batch) const {
  if (static_cast<int64_t>(batch.seqs.size()) > opts_.max_batch_size)
    return make_error(errc::invalid_argument, "step has " + std::to_string(batch.seqs.size()) +
                                                  " sequences, max_batch_size is " +
                                                  std::to_string(opts_.max_batch_size));
  if (batch.num_tokens() > max_tokens_)
    return make_error(errc::invalid_argument, "step has " + std::to_string(batch.num_tokens()) +
                                                  " tokens, the reserve holds " + std::to_string(max_tokens_));
  const int64_t bs = kv_layout_.block_seq_len;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const seq_step& s = batch.seqs[i];
    const std::span<const int32_t> table = block_table_of(batch, i);
    const int64_t end = static_cast<int64_t>(s.start_pos) + static_cast<int64_t>(s.tokens.size());
    const int64_t need = (end + bs - 1) / bs;
    if (s.tokens.empty() || s.start_pos < 0 || need > max_blocks_per_seq_ ||
        static_cast<int64_t>(table.size()) < need || static_cast<int64_t>(table.size()) > max_blocks_per_seq_)
      return make_error(errc::invalid_argument, "seq " + std::to_string(s.seq_id) + ": " +
                                                    std::to_string(s.tokens.size()) + " tokens at " +
                                                    std::to_string(s.start_pos) + " with " +
                                                    std::to_string(table.size()) + " blocks (max " +
                                                    std::to_string(max_blocks_per_seq_) + ")");
    for (int32_t b : table)
      if (b < 0 || b >= kv_layout_.num_blocks)
        return make_error(errc::invalid_argument, "seq " + std::to_string(s.seq_id) + ": block id " +
                                                      std::to_string(b) + " out of range");
    if (s.next_token >= cfg_.vocab_size || s.prompt_logprobs > 32)
      return make_error(errc::invalid_argument, "seq " + std::to_string(s.seq_id) + ": next_token or prompt_logprobs out of range");
    for (int32_t t : s.tokens)
      if (t < 0 || t >= cfg_.vocab_size)
        return make_error(errc::invalid_argument, "seq " + std::to_string(s.seq_id) + ": token id " +
                                                      std::to_string(t) + " out of range");
  }
  return ok_status();
}

status cuda_model::stage_block_tables(const step_batch& batch) {
  const int64_t bps = max_blocks_per_seq_, n = static_cast<int64_t>(batch.seqs.size());
  int32_t* mirror = host_meta_ + tables_off_;
  int32_t* dev = buf_.meta + tables_off_;
  const block_table_view& v = batch.tables;
  const bool synced = tables_synced_;
  tables_synced_ = false;  // until every copy below is queued
  table_rows_.resize(static_cast<size_t>(n));
  auto row_len = [bps](int64_t len) { return std::min<int64_t>(len, bps); };  // validate() bounds it
  if (v.data && v.num_rows <= opts_.max_batch_size) {
    if (!synced) {  // every row: the table held something else (a whole batch, or nothing yet)
      for (int64_t r = 0; r < v.num_rows; ++r)
        std::copy_n(v.data + r * v.stride, row_len(v.len[r]), mirror + r * bps);
      if (v.num_rows > 0)
        TROUPE_CUDA_TRY(cudaMemcpyAsync(dev, mirror, v.num_rows * bps * 4, cudaMemcpyHostToDevice, stream_),
                        "upload block tables");
    } else {
      for (int64_t k = 0; k < v.num_dirty; ++k) {
        const int64_t r = v.dirty[k], from = v.dirty_from[k], to = row_len(v.len[r]);
        if (to <= from) continue;
        std::copy(v.data + r * v.stride + from, v.data + r * v.stride + to, mirror + r * bps + from);
        TROUPE_CUDA_TRY(cudaMemcpyAsync(dev + r * bps + from, mirror + r * bps + from, (to - from) * 4,
                                        cudaMemcpyHostToDevice, stream_),
                        "patch a block-table row");
      }
    }
    for (int64_t i = 0; i < n; ++i) table_rows_[static_cast<size_t>(i)] = v.row_of[i];
    tables_synced_ = true;
    return ok_status();
  }
  for (int64_t i = 0; i < n; ++i) {
    const auto t = block_table_of(batch, static_cast<size_t>(i));
    std::copy_n(t.data(), row_len(static_cast<int64_t>(t.size())), mirror + i * bps);
    table_rows_[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  }
  if (n > 0)
    TROUPE_CUDA_TRY(cudaMemcpyAsync(dev, mirror, n * bps * 4, cudaMemcpyHostToDevice, stream_), "upload block tables");
  return ok_status();
}

}  // namespace troupe
