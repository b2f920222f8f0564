// Incremental prefix commits (block_pool::commit_blocks): committing a sequence's blocks as they
// fill caches exactly what one whole-prefix commit caches, a commit that would leave a gap in the
// chain is refused, and in steady decode registering blocks, extending tables and handing out
// reservoir blocks allocate nothing once the holders' tables are reserved.
#include <gtest/gtest.h>

#include <vector>

#include "runtime/block_pool.h"
#include "support/allocation_counter.h"

namespace troupe {
namespace {

using testing::allocations_of;

constexpr int32_t kLen = 4;

std::vector<int32_t> seq_tokens(int32_t n, int32_t salt) {
  std::vector<int32_t> t;
  for (int32_t i = 0; i < n; ++i) t.push_back(salt * 1000 + i);
  return t;
}

TEST(block_pool_commits, block_by_block_caches_what_a_whole_prefix_commit_caches) {
  block_pool whole({32, kLen, true, {}}), parts({32, kLen, true, {}});
  const auto t = seq_tokens(5 * kLen + 2, 1);
  ASSERT_TRUE(whole.lease(1, 6).has_value());
  ASSERT_TRUE(parts.lease(1, 6).has_value());
  ASSERT_TRUE(whole.commit_full_blocks(1, t).ok());
  // Blocks as they fill: 2, then 1, then 2 (and a repeat of an earlier one, which is skipped).
  const std::span<const int32_t> all(t);
  ASSERT_TRUE(parts.commit_blocks(1, 0, all.subspan(0, 2 * kLen)).ok());
  ASSERT_TRUE(parts.commit_blocks(1, 2, all.subspan(2 * kLen, kLen)).ok());
  ASSERT_TRUE(parts.commit_blocks(1, 1, all.subspan(kLen, kLen)).ok());
  ASSERT_TRUE(parts.commit_blocks(1, 3, all.subspan(3 * kLen, 2 * kLen + 2)).ok());  // partial tail ignored
  whole.release(1);
  parts.release(1);
  auto a = whole.match_prefix(2, t);
  auto b = parts.match_prefix(2, t);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->num_tokens, 5 * kLen);
  EXPECT_EQ(b->num_tokens, a->num_tokens);
  EXPECT_EQ(b->block_ids, a->block_ids);
  EXPECT_TRUE(parts.check_invariants().ok());
}

TEST(block_pool_commits, a_commit_past_the_committed_blocks_is_refused) {
  block_pool pool({16, kLen, true, {}});
  const auto t = seq_tokens(3 * kLen, 2);
  ASSERT_TRUE(pool.lease(1, 3).has_value());
  const std::span<const int32_t> all(t);
  const status gap = pool.commit_blocks(1, 1, all.subspan(kLen, kLen));  // block 0 never committed
  ASSERT_FALSE(gap.ok());
  EXPECT_EQ(gap.err().code, errc::internal);
  EXPECT_EQ(pool.usage().num_cached, 0);
  EXPECT_TRUE(pool.commit_blocks(1, 0, all).ok());
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool_commits, steady_decode_block_bookkeeping_allocates_nothing) {
  static std::vector<int32_t> keep;
  ASSERT_GT(allocations_of([] { keep = std::vector<int32_t>(100, 1); }), 0) << "this binary counts no allocations";
  const int32_t num_seqs = 64, blocks_each = 8;
  block_pool pool({num_seqs * blocks_each + 64, kLen, true, {}});
  const uint64_t reservoir = uint64_t{1} << 62;
  std::vector<std::vector<int32_t>> tokens;
  for (int32_t s = 0; s < num_seqs; ++s) {
    tokens.push_back(seq_tokens(blocks_each * kLen, s + 10));
    ASSERT_TRUE(pool.lease(static_cast<uint64_t>(s + 1), 1).has_value());
    pool.reserve(static_cast<uint64_t>(s + 1), blocks_each);
  }
  ASSERT_TRUE(pool.lease(reservoir, num_seqs * 3).has_value());
  int64_t allocations = 0;
  id_list got;
  for (int32_t b = 0; b < blocks_each - 1; ++b) {
    allocations += allocations_of([&] {
      for (int32_t s = 0; s < num_seqs; ++s) {
        const auto h = static_cast<uint64_t>(s + 1);
        const std::span<const int32_t> all(tokens[static_cast<size_t>(s)]);
        ASSERT_TRUE(pool.commit_blocks(h, b, all.subspan(static_cast<size_t>(b) * kLen, kLen)).ok());
        if (b % 2 == 0 && b < 6) {  // a block from the reservoir, in lease order
          const int32_t next = pool.blocks_of(reservoir)[0];
          ASSERT_TRUE(pool.transfer(reservoir, h, {&next, 1}).ok());
        } else {
          got.clear();
          ASSERT_TRUE(pool.extend_into(h, 1, got));
          ASSERT_EQ(got.size(), 1u);
        }
      }
    });
  }
  EXPECT_EQ(allocations, 0);
  EXPECT_EQ(pool.usage().num_used, num_seqs * blocks_each);  // the reservoir handed out all it held
  EXPECT_TRUE(pool.check_invariants().ok());
}

}  // namespace
}  // namespace troupe
