// token_counts (the sampler's penalty tables): counts match a std::map reference under random adds,
// growth past the reserved size keeps every count, negative ids are ignored, and entries list each
// token once in first-added order.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "runtime/token_counts.h"

namespace troupe {
namespace {

TEST(token_counts, counts_match_a_reference_map_through_growth) {
  std::mt19937 rng(3);
  for (size_t reserved : {size_t{0}, size_t{8}, size_t{5000}}) {
    token_counts c;
    c.reserve(reserved);
    std::map<int32_t, int32_t> ref;
    std::uniform_int_distribution<int32_t> tok(0, 3000);
    for (int i = 0; i < 20000; ++i) {
      const int32_t t = tok(rng);
      c.add(t);
      ++ref[t];
    }
    ASSERT_EQ(c.size(), ref.size()) << "reserved " << reserved;
    for (const auto& [t, n] : ref) {
      EXPECT_TRUE(c.contains(t));
      EXPECT_EQ(c.count(t), n) << "token " << t;
    }
    EXPECT_FALSE(c.contains(3001));
    EXPECT_EQ(c.count(3001), 0);
    int64_t total = 0;
    std::map<int32_t, int32_t> listed;
    for (const auto& e : c.entries()) {
      EXPECT_TRUE(listed.emplace(e.token, e.count).second) << "token " << e.token << " listed twice";
      total += e.count;
    }
    EXPECT_EQ(total, 20000);
  }
}

TEST(token_counts, entries_keep_first_added_order_and_ignore_negative_ids) {
  token_counts c;
  for (int32_t t : {7, -1, 3, 7, 0, 3, 7, -5}) c.add(t);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c.entries()[0].token, 7);
  EXPECT_EQ(c.entries()[0].count, 3);
  EXPECT_EQ(c.entries()[1].token, 3);
  EXPECT_EQ(c.entries()[1].count, 2);
  EXPECT_EQ(c.entries()[2].token, 0);
  EXPECT_EQ(c.entries()[2].count, 1);
  EXPECT_FALSE(c.contains(-1));
  EXPECT_EQ(c.count(-5), 0);
}

}  // namespace
}  // namespace troupe
