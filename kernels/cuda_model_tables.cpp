// cuda_model's persistent device block table. Design note: the table lives at buf_.meta + tables_off_
// ([max_batch_size, max_blocks_per_seq_] block ids) and keeps the rows of the executor's persistent
// batch (runtime/persistent_batch.h) across steps: a serving step uploads only the rows its view
// marks dirty, from the columns that changed, through the pinned mirror at host_meta_ + tables_off_.
// A whole batch (tests, warm-up, a view with more rows than the table) is written into rows 0..n-1
// and leaves the table unsynced, so the next view uploads every row it has.
#include <algorithm>

#include "kernels/cuda_model.h"

namespace troupe {

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
