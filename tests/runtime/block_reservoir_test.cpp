// A scheduler's reservoir of pre-leased blocks at the block pool: reserve leases what is available,
// transfer moves reservoir blocks to a sequence (reference counts and conservation unchanged),
// misuse changes nothing, and releasing the reservoir or the sequence returns every block.
#include <gtest/gtest.h>

#include <vector>

#include "runtime/block_manager_core.h"
#include "runtime/block_reservoir.h"
#include "runtime/block_pool.h"

namespace troupe {
namespace {

constexpr holder_id k_reservoir = (1ull << 63) | 1;

block_pool make_pool(int32_t num_blocks) {
  block_pool_options o;
  o.num_blocks = num_blocks;
  o.block_seq_len = 4;
  return block_pool(std::move(o));
}

TEST(block_reservoir, reserve_leases_at_most_what_is_available) {
  auto pool = make_pool(10);
  ASSERT_TRUE(pool.lease(1, 7).has_value());
  const block_grant g = apply_block_reserve(pool, k_reservoir, 8);  // only 3 left
  EXPECT_EQ(g.holder, k_reservoir);
  EXPECT_EQ(g.blocks.size(), 3u);
  EXPECT_EQ(g.num_available, 0);
  EXPECT_EQ(pool.usage().num_used, 10);
  EXPECT_TRUE(apply_block_reserve(pool, k_reservoir, 2).blocks.empty());
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_reservoir, assignments_move_blocks_to_sequences_and_conserve_every_block) {
  auto pool = make_pool(12);
  ASSERT_TRUE(pool.lease(1, 2).has_value());
  const block_grant g = apply_block_reserve(pool, k_reservoir, 6);
  ASSERT_EQ(g.blocks.size(), 6u);
  block_assignments a;
  a.reservoir = k_reservoir;
  a.grants.push_back({1, true, {g.blocks[0], g.blocks[1]}});
  a.grants.push_back({2, true, {g.blocks[2]}});
  apply_block_assignments(pool, a);
  ASSERT_EQ(pool.blocks_of(1).size(), 4u);
  EXPECT_EQ(pool.blocks_of(1)[2], g.blocks[0]);  // appended in order
  EXPECT_EQ(pool.blocks_of(1)[3], g.blocks[1]);
  ASSERT_EQ(pool.blocks_of(2).size(), 1u);
  EXPECT_EQ(pool.blocks_of(k_reservoir).size(), 3u);
  for (int32_t b : g.blocks) EXPECT_EQ(pool.ref_count(b), 1) << b;
  EXPECT_EQ(pool.usage().num_used, 8);
  EXPECT_TRUE(pool.check_invariants().ok());
  // Every block comes back, wherever it went.
  pool.release(1);
  pool.release(2);
  pool.release(k_reservoir);
  EXPECT_EQ(pool.usage().num_used, 0);
  EXPECT_EQ(pool.usage().num_free, 12);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_reservoir, a_transfer_of_blocks_the_reservoir_does_not_hold_changes_nothing) {
  auto pool = make_pool(8);
  ASSERT_TRUE(pool.lease(1, 2).has_value());
  const block_grant g = apply_block_reserve(pool, k_reservoir, 3);
  const int32_t foreign = pool.blocks_of(1)[0];
  EXPECT_FALSE(pool.transfer(k_reservoir, 2, std::vector<int32_t>{g.blocks[0], foreign}).ok());
  EXPECT_EQ(pool.blocks_of(k_reservoir).size(), 3u);
  EXPECT_TRUE(pool.blocks_of(2).empty());
  // A reservoir released meanwhile (its owner went down): the late assignment is skipped.
  pool.release(k_reservoir);
  block_assignments late;
  late.reservoir = k_reservoir;
  late.grants.push_back({2, true, {g.blocks[0]}});
  apply_block_assignments(pool, late);
  EXPECT_TRUE(pool.blocks_of(2).empty());
  EXPECT_EQ(pool.usage().num_used, 2);
  EXPECT_TRUE(pool.check_invariants().ok());
}

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

block_request extends(std::initializer_list<std::pair<uint64_t, int32_t>> xs) {
  block_request r;
  for (auto [h, n] : xs) r.extends.push_back({h, n});
  return r;
}

TEST(block_reservoir_bookkeeping, serves_extends_all_or_nothing_and_reports_what_it_assigned) {
  block_reservoir res(8, 1ull << 63);
  EXPECT_EQ(res.wanted(), 8);
  res.on_refill_sent();
  EXPECT_EQ(res.wanted(), 0);  // one refill at a time
  res.on_grant({res.holder(), {10, 11, 12, 13, 14}, 100});
  EXPECT_EQ(res.size(), 5);
  block_assignments report;
  auto reply = res.assign(extends({{1, 2}, {2, 0}, {3, 1}}), report);
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->extends.size(), 3u);
  EXPECT_EQ(reply->extends[0].blocks, (std::vector<int32_t>{10, 11}));
  EXPECT_TRUE(reply->extends[1].ok);
  EXPECT_TRUE(reply->extends[1].blocks.empty());
  EXPECT_EQ(reply->extends[2].blocks, (std::vector<int32_t>{12}));
  EXPECT_EQ(report.reservoir, res.holder());
  ASSERT_EQ(report.grants.size(), 2u);  // only extends that got blocks
  EXPECT_EQ(res.size(), 2);
  EXPECT_FALSE(res.assign(extends({{1, 3}}), report));  // short: nothing taken
  EXPECT_EQ(res.size(), 2);
  block_request with_start = extends({{1, 1}});
  with_start.starts.push_back({});
  EXPECT_FALSE(res.assign(with_start, report));  // admission goes to the block manager
  EXPECT_EQ(res.wanted(), 6);                    // below the low watermark (4 of 8)
}

TEST(block_reservoir_bookkeeping, take_back_drops_grants_of_the_old_holder) {
  block_reservoir res(4, 1ull << 63);
  res.on_refill_sent();
  const uint64_t old = res.holder();
  EXPECT_EQ(res.take_back(), old);  // a refill is in flight: the old holder must be released
  EXPECT_NE(res.holder(), old);
  EXPECT_EQ(res.wanted(), 4);       // a new refill may go at once
  res.on_grant({old, {1, 2, 3, 4}, 0});
  EXPECT_EQ(res.size(), 0);         // released with the old holder at the block manager
  EXPECT_EQ(res.take_back(), 0u);   // nothing held: nothing to release
  block_reservoir off(0, 1ull << 63);
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(off.wanted(), 0);
  block_assignments report;
  EXPECT_FALSE(off.assign(extends({{1, 0}}), report));
}

}  // namespace
}  // namespace troupe
