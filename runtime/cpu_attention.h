// Query-tiled paged attention on the CPU: a tile of consecutive query rows of one sequence and the
// query heads sharing one KV head (a GQA group) walk that head's cached K/V once, each block run
// converted from float16 to float32 once and used by every row of the tile. Per row the arithmetic
// is paged_attention_row's exactly (cpu_kernels.h), so the results are bit-identical to it.
#pragma once

#include <cstdint>

#include "runtime/cpu_kernels.h"

namespace troupe {

// Query rows per tile in the forward pass: 4 rows × a group of 3 heads (SmolLM2) keep 12 score
// accumulators in registers, and a tile's scores ([rows · heads, context] floats) stay in L2.
inline constexpr int64_t kAttentionTileRows = 4;

// One tile: rows r in [0, num_rows) at positions first_pos + r, heads g in [0, num_heads) of one
// KV head's group. Row r of head g reads q + r * q_row_stride + g * head_dim ([head_dim] floats)
// and writes out + r * out_row_stride + g * head_dim.
struct attention_tile {
  const float* q = nullptr;
  float* out = nullptr;
  int64_t q_row_stride = 0;
  int64_t out_row_stride = 0;
  int64_t num_rows = 0;
  int64_t num_heads = 0;
  int64_t first_pos = 0;
  int64_t window = 0;  // > 0: the row at pos attends [pos - window + 1, pos]; 0: [0, pos]
  float scale = 1.0f;
};

// Positions the tile's rows span together: from the first row's lowest key to the last row.
int64_t attention_tile_span(const attention_tile& t);

// Floats of scratch paged_attention_tile needs for a tile of `rows_x_heads` (rows · heads) whose
// span is at most `max_span`.
int64_t attention_tile_scratch_floats(int64_t rows_x_heads, int64_t max_span, const paged_kv_view& kv);

// out of every (row, head) of the tile = paged_attention_row over [lo(pos), pos] of that row.
// scratch: attention_tile_scratch_floats(num_rows · num_heads, attention_tile_span(t), kv) floats.
// The float16 cache on AVX2 takes the tiled path; other caches run paged_attention_row per row.
void paged_attention_tile(const attention_tile& t, const paged_kv_view& kv, float* scratch);

}  // namespace troupe
