// conversation_pins: a pin keeps a conversation's cached blocks out of the LRU; the budget is never
// exceeded (filled to the brim), pins expire by age, yield to leases oldest first, and every block
// comes back when a pin goes (conservation checked after each).
#include "runtime/conversation_pins.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace troupe {
namespace {

constexpr int32_t kBlockLen = 4;
using clock_type = conversation_pins::clock;

block_pool make_pool(int32_t num_blocks = 16) {
  block_pool_options o;
  o.num_blocks = num_blocks;
  o.block_seq_len = kBlockLen;
  return block_pool(std::move(o));
}

std::vector<int32_t> tokens(int32_t n, int32_t start) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

// A finished request: its full blocks are committed and released into the prefix cache.
void run_and_release(block_pool& pool, holder_id h, const std::vector<int32_t>& t) {
  ASSERT_TRUE(pool.lease(h, pool.blocks_for_tokens(static_cast<int64_t>(t.size()))).has_value());
  ASSERT_TRUE(pool.commit_full_blocks(h, t).ok());
  pool.release(h);
}

// Every block is free or cached again: nothing leaked by pins.
void expect_all_returned(const block_pool& pool) {
  EXPECT_TRUE(pool.check_invariants().ok());
  EXPECT_EQ(pool.usage().num_used, 0);
  EXPECT_EQ(pool.num_available(), pool.num_blocks());
}

TEST(conversation_pins, a_pin_survives_lru_pressure_and_the_next_turn_hits_it) {
  auto pool = make_pool();
  conversation_pins pins(pool, {8, 3600});
  const auto conv = tokens(13, 0);  // 3 full blocks + 1 token
  run_and_release(pool, 1, conv);
  const auto now = clock_type::now();
  EXPECT_EQ(pins.pin(42, conv, now), 3);
  EXPECT_EQ(pool.usage().num_used, 3);  // held by the pin, out of the LRU
  // Other traffic leases every other block, evicting whatever is cached: the pin stays.
  ASSERT_TRUE(pool.lease(2, 13).has_value());
  EXPECT_FALSE(pool.lease(3, 1).has_value());
  pool.release(2);
  // The next turn (history + new tokens) finds the whole previous conversation.
  auto next = conv;
  for (int32_t t : tokens(6, 100)) next.push_back(t);
  auto hit = pool.match_prefix(4, next);
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->num_tokens, 12);
  pool.release(4);
  EXPECT_EQ(pins.unpin(42), 3);
  expect_all_returned(pool);
  EXPECT_EQ(pins.stats().num_released, 1);
}

TEST(conversation_pins, the_budget_is_never_exceeded_when_filled) {
  auto pool = make_pool(32);
  conversation_pins pins(pool, {7, 3600});
  const auto now = clock_type::now();
  for (uint64_t k = 0; k < 6; ++k) {
    const auto conv = tokens(9, static_cast<int32_t>(k * 1000));  // 2 full blocks each
    run_and_release(pool, 100 + k, conv);
    EXPECT_EQ(pins.pin(k, conv, now), 2);
    EXPECT_LE(pins.num_pinned_blocks(), 7);
    EXPECT_LE(pool.usage().num_used, 7);
  }
  EXPECT_EQ(pins.stats().num_pins, 3);  // 3 x 2 blocks fit in 7; older ones were released
  EXPECT_EQ(pins.stats().num_dropped_budget, 3);
  // A conversation larger than the whole budget is not pinned at all.
  const auto big = tokens(33, 50000);
  run_and_release(pool, 200, big);
  EXPECT_EQ(pins.pin(99, big, now), 0);
  EXPECT_LE(pins.num_pinned_blocks(), 7);
  for (uint64_t k = 0; k < 6; ++k) pins.unpin(k);
  expect_all_returned(pool);
}

TEST(conversation_pins, pins_expire_by_age) {
  auto pool = make_pool();
  conversation_pins pins(pool, {8, 60});
  auto now = clock_type::now();
  run_and_release(pool, 1, tokens(9, 0));
  run_and_release(pool, 2, tokens(9, 500));
  pins.pin(1, tokens(9, 0), now);
  pins.pin(2, tokens(9, 500), now + std::chrono::seconds(30));
  EXPECT_EQ(pins.expire(now + std::chrono::seconds(61)), 1);  // only the older one
  EXPECT_EQ(pins.stats().num_pins, 1);
  EXPECT_EQ(pins.expire(now + std::chrono::seconds(91)), 1);
  EXPECT_EQ(pins.stats().num_expired, 2);
  expect_all_returned(pool);
}

TEST(conversation_pins, pins_yield_to_a_lease_oldest_first) {
  auto pool = make_pool(8);
  conversation_pins pins(pool, {8, 3600});
  const auto now = clock_type::now();
  run_and_release(pool, 1, tokens(9, 0));
  run_and_release(pool, 2, tokens(9, 500));
  pins.pin(1, tokens(9, 0), now);
  pins.pin(2, tokens(9, 500), now);
  EXPECT_EQ(pool.num_available(), 4);
  // Counting what pins alone hold, every block is available to a lease.
  EXPECT_EQ(pins.num_available_with_pins(), 8);
  // A request that needs 6 blocks: the oldest pin goes, the newer stays.
  EXPECT_EQ(pins.make_room(6), 1);
  EXPECT_TRUE(pool.lease(3, 6).has_value());
  EXPECT_EQ(pins.stats().num_dropped_pressure, 1);
  EXPECT_EQ(pins.stats().num_pins, 1);
  // Needing everything releases every pin.
  pool.release(3);
  EXPECT_EQ(pins.make_room(8), 1);
  expect_all_returned(pool);
}

TEST(conversation_pins, repinning_a_conversation_replaces_its_pin_and_blocks_shared_with_a_request_stay) {
  auto pool = make_pool();
  conversation_pins pins(pool, {8, 3600});
  const auto now = clock_type::now();
  run_and_release(pool, 1, tokens(9, 0));
  EXPECT_EQ(pins.pin(7, tokens(9, 0), now), 2);
  EXPECT_EQ(pins.pin(7, tokens(9, 0), now), 2);  // the same conversation: one pin
  EXPECT_EQ(pins.stats().num_pins, 1);
  EXPECT_EQ(pins.num_pinned_blocks(), 2);
  // A running request shares the pinned blocks: they are not available through the pin alone.
  ASSERT_TRUE(pool.match_prefix(5, tokens(10, 0)).ok());
  EXPECT_EQ(pins.num_available_with_pins(), pool.num_available());
  pins.unpin(7);
  EXPECT_EQ(pool.usage().num_used, 2);  // still the request's
  pool.release(5);
  expect_all_returned(pool);
}

TEST(conversation_pins, a_zero_budget_pins_nothing) {
  auto pool = make_pool();
  conversation_pins pins(pool, {0, 3600});
  run_and_release(pool, 1, tokens(9, 0));
  EXPECT_EQ(pins.pin(1, tokens(9, 0), clock_type::now()), 0);
  expect_all_returned(pool);
}

}  // namespace
}  // namespace troupe
