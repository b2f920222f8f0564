// Query-tiled paged attention: every (row, head) of a tile carries the bits paged_attention_row gives
// that row alone, over odd head dims, block lengths, group sizes, tile heights, positions (a tile
// crossing blocks, starting mid-block) and sliding windows, for float16 and float32 caches, with
// and without AVX2.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "runtime/cpu_attention.h"

namespace troupe {
namespace {

struct scalar_scope {
  explicit scalar_scope(bool s) { set_cpu_matmul_scalar(s); }
  ~scalar_scope() { set_cpu_matmul_scalar(false); }
};

// A pool of one layer, `kv_heads` KV heads, blocks in reverse order in the table.
struct test_cache {
  std::vector<uint16_t> f16;
  std::vector<float> f32;
  std::vector<int32_t> table;
  paged_kv_view view(int64_t g, bool half, int64_t kv_heads, int64_t bsl, int64_t hd) const {
    paged_kv_view kv;
    if (half) kv.pool_f16 = f16.data();
    else kv.pool = f32.data();
    kv.block_table = table.data();
    kv.block_seq_len = bsl;
    kv.head_dim = hd;
    kv.block_stride = 2 * kv_heads * bsl * hd;
    kv.k_offset = g * bsl * hd;
    kv.v_offset = kv.k_offset + kv_heads * bsl * hd;
    return kv;
  }
};

TEST(cpu_attention, tile_rows_carry_the_bits_of_paged_attention_row) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  int cases = 0;
  for (bool scalar : {false, true}) {
    scalar_scope sc(scalar);
    for (int64_t hd : {24, 40, 64}) {
      for (int64_t bsl : {1, 5, 16}) {
        const int64_t kv_heads = 2, max_pos = 70, num_blocks = max_pos / bsl + 2;
        test_cache c;
        const size_t elems = static_cast<size_t>(num_blocks * 2 * kv_heads * bsl * hd);
        for (size_t i = 0; i < elems; ++i) {
          c.f16.push_back(f32_to_f16_bits(u(rng)));
          c.f32.push_back(u(rng));
        }
        for (int64_t b = num_blocks - 1; b >= 0; --b) c.table.push_back(static_cast<int32_t>(b));
        for (int64_t group : {1, 3, 5}) {
          for (int64_t rows : {1, 3, 4, 7}) {
            for (int64_t first_pos : {int64_t{0}, int64_t{13}, max_pos - rows}) {
              for (int64_t window : {0, 1, 9}) {
                for (bool half : {true, false}) {
                  const int64_t g = 1;  // the second KV head: offsets are exercised
                  const paged_kv_view kv = c.view(g, half, kv_heads, bsl, hd);
                  // q/out rows hold all heads of all groups, as the forward pass lays them out.
                  const int64_t row_stride = kv_heads * group * hd + 8;
                  std::vector<float> q(static_cast<size_t>(rows * row_stride)), got(q.size(), -7.f), want(q.size(), -7.f);
                  for (auto& x : q) x = u(rng);
                  attention_tile t;
                  t.q = q.data() + g * group * hd;
                  t.out = got.data() + g * group * hd;
                  t.q_row_stride = t.out_row_stride = row_stride;
                  t.num_rows = rows;
                  t.num_heads = group;
                  t.first_pos = first_pos;
                  t.window = window;
                  t.scale = 0.3f;
                  std::vector<float> scratch(static_cast<size_t>(
                      attention_tile_scratch_floats(rows * group, attention_tile_span(t), kv)));
                  paged_attention_tile(t, kv, scratch.data());
                  std::vector<float> scores(static_cast<size_t>(max_pos + 1));
                  for (int64_t r = 0; r < rows; ++r)
                    for (int64_t h = 0; h < group; ++h) {
                      const int64_t pos = first_pos + r, at = r * row_stride + (g * group + h) * hd;
                      const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
                      paged_attention_row(q.data() + at, kv, lo, pos, 0.3f, scores.data(), want.data() + at);
                    }
                  ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
                      << "scalar=" << scalar << " hd=" << hd << " bsl=" << bsl << " group=" << group
                      << " rows=" << rows << " first_pos=" << first_pos << " window=" << window << " f16=" << half;
                  ++cases;
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 2 * 3 * 3 * 3 * 4 * 3 * 3 * 2);
}

TEST(cpu_attention, span_covers_the_first_rows_window_to_the_last_row) {
  attention_tile t;
  t.num_rows = 4;
  t.first_pos = 10;
  EXPECT_EQ(attention_tile_span(t), 14);  // [0, 13]
  t.window = 3;
  EXPECT_EQ(attention_tile_span(t), 6);  // [8, 13]
  t.first_pos = 0;
  EXPECT_EQ(attention_tile_span(t), 4);  // the window clipped at 0
}

}  // namespace
}  // namespace troupe
