// block_pool: leases, refusals, release, prefix caching (with exact confirmation under forced hash
// collisions), LRU eviction order, fork sharing, and a randomized conservation test. vLLM style: a
// dozen blocks and a comment on each expectation.
#include "runtime/block_pool.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <unordered_map>
#include <vector>

namespace troupe {
namespace {

constexpr int32_t kBlockLen = 4;

block_pool make_pool(int32_t num_blocks = 12, block_hash_fn hash = {}) {
  block_pool_options o;
  o.num_blocks = num_blocks;
  o.block_seq_len = kBlockLen;
  o.hash = std::move(hash);
  return block_pool(std::move(o));
}

std::vector<int32_t> iota_tokens(int32_t n, int32_t start = 0) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

// Leases enough blocks for `tokens`, commits the full ones, then releases: the prompt is now cached.
void run_and_release(block_pool& pool, holder_id h, const std::vector<int32_t>& tokens) {
  auto ids = pool.lease(h, pool.blocks_for_tokens(static_cast<int64_t>(tokens.size())));
  ASSERT_TRUE(ids.has_value());
  ASSERT_TRUE(pool.commit_full_blocks(h, tokens).ok());
  pool.release(h);
}

TEST(block_pool, leases_refuses_and_extends) {
  auto pool = make_pool();
  auto a = pool.lease(1, 5);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size(), 5u);
  // Low ids are handed out first.
  EXPECT_EQ(*a, (std::vector<int32_t>{0, 1, 2, 3, 4}));
  // 7 left: asking for 8 is a normal refusal and changes nothing.
  EXPECT_FALSE(pool.lease(2, 8).has_value());
  EXPECT_EQ(pool.usage().num_free, 7);
  EXPECT_TRUE(pool.blocks_of(2).empty());
  // Extending the first holder appends to its table.
  auto b = pool.extend(1, 2);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(pool.blocks_of(1).size(), 7u);
  EXPECT_EQ(pool.blocks_of(1)[5], (*b)[0]);
  // A zero-sized lease is granted and empty.
  EXPECT_TRUE(pool.lease(3, 0).has_value());
  EXPECT_EQ(pool.usage().num_used, 7);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, release_returns_blocks) {
  auto pool = make_pool();
  ASSERT_TRUE(pool.lease(1, 12).has_value());
  // Every block is taken.
  EXPECT_FALSE(pool.lease(2, 1).has_value());
  // Unhashed blocks go straight back to the free list.
  EXPECT_EQ(pool.release(1), 12);
  EXPECT_EQ(pool.usage().num_free, 12);
  EXPECT_EQ(pool.usage().num_used, 0);
  // Releasing an unknown holder is a no-op.
  EXPECT_EQ(pool.release(42), 0);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, release_all_of_holders_returns_each) {
  auto pool = make_pool();
  ASSERT_TRUE(pool.lease(1, 3).has_value());
  ASSERT_TRUE(pool.lease(2, 4).has_value());
  ASSERT_TRUE(pool.lease(3, 1).has_value());
  std::vector<holder_id> gone{1, 2, 99};
  // Holder 99 is unknown: only 3 + 4 blocks come back.
  EXPECT_EQ(pool.release_all_of_holders(gone), 7);
  EXPECT_EQ(pool.usage().num_used, 1);
  EXPECT_EQ(pool.num_holders(), 1u);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, prefix_hit_after_release) {
  auto pool = make_pool();
  auto prompt = iota_tokens(10);  // 2 full blocks + 2 tokens
  run_and_release(pool, 1, prompt);
  // The 2 full blocks stay cached, the partial one is free.
  EXPECT_EQ(pool.usage().num_cached, 2);
  EXPECT_EQ(pool.usage().num_free, 10);
  auto m = pool.match_prefix(2, prompt);
  ASSERT_TRUE(m.ok());
  // Both full blocks hit: 8 tokens; the holder now references them.
  EXPECT_EQ(m->num_tokens, 8);
  EXPECT_EQ(m->block_ids, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(pool.ref_count(0), 1);
  EXPECT_EQ(pool.usage().num_cached, 0);
  EXPECT_EQ(pool.usage().prefix_queries, 10);
  EXPECT_EQ(pool.usage().prefix_hits, 8);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, never_matches_the_whole_prompt) {
  auto pool = make_pool();
  auto prompt = iota_tokens(8);  // exactly 2 full blocks
  run_and_release(pool, 1, prompt);
  EXPECT_EQ(pool.usage().num_cached, 2);
  auto m = pool.match_prefix(2, prompt);
  ASSERT_TRUE(m.ok());
  // One token must be left to compute, so only the first block can hit.
  EXPECT_EQ(m->num_tokens, 4);
}

TEST(block_pool, diverging_prompt_hits_only_common_blocks) {
  auto pool = make_pool();
  run_and_release(pool, 1, iota_tokens(13));  // 3 full blocks cached
  auto other = iota_tokens(13);
  other[5] = 999;  // differs inside the second block
  auto m = pool.match_prefix(2, other);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->num_tokens, 4);
  // The same third block after a different second block is a different chain: no hit.
  EXPECT_EQ(m->block_ids.size(), 1u);
}

TEST(block_pool, hash_collision_is_confirmed_by_exact_tokens) {
  // Every block hashes to the same value: only the exact comparison tells blocks apart.
  auto pool = make_pool(12, [](block_hash, std::span<const int32_t>) { return block_hash{7}; });
  run_and_release(pool, 1, iota_tokens(9));        // blocks [0..3], [4..7]
  run_and_release(pool, 2, iota_tokens(9, 100));   // blocks [100..103], [104..107]
  auto a = pool.match_prefix(3, iota_tokens(9, 100));
  ASSERT_TRUE(a.ok());
  // The second prompt's own blocks, not the first prompt's colliding ones.
  EXPECT_EQ(a->num_tokens, 8);
  EXPECT_EQ(a->block_ids, (std::vector<int32_t>{2, 3}));
  // A prompt whose first block matches prompt 1 and second block matches prompt 2's second block:
  // the second block's parent differs, so only one block hits.
  std::vector<int32_t> mixed{0, 1, 2, 3, 104, 105, 106, 107, 0};
  auto b = pool.match_prefix(4, mixed);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->block_ids, (std::vector<int32_t>{0}));
  // Tokens nobody cached: nothing, despite the equal hash.
  auto c = pool.match_prefix(5, iota_tokens(9, 500));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->num_tokens, 0);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, evicts_least_recent_tail_first) {
  auto pool = make_pool();
  run_and_release(pool, 1, iota_tokens(13));       // chain A: blocks 0,1,2 (3 is partial, freed)
  run_and_release(pool, 2, iota_tokens(13, 100));  // chain B: blocks 3,4,5 (6 is partial, freed)
  // A was released first, so its blocks are older; within a chain the deepest goes first.
  auto order = pool.eviction_order();
  ASSERT_EQ(order.size(), 6u);
  // A released tail-first -> 2, 1, 0; then B -> 5, 4, 3.
  EXPECT_EQ(order, (std::vector<int32_t>{2, 1, 0, 5, 4, 3}));
  // Fill the free list completely; the next lease must evict from the LRU head.
  ASSERT_TRUE(pool.lease(9, pool.usage().num_free).has_value());
  auto e = pool.lease(9, 2);
  ASSERT_TRUE(e.has_value());
  // The deepest blocks of the least recent chain (A) are evicted first.
  EXPECT_EQ(*e, (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(pool.usage().num_evictions, 2);
  // A's first block still hits; B is untouched.
  auto m = pool.match_prefix(10, iota_tokens(13));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->block_ids, (std::vector<int32_t>{0}));
  auto mb = pool.match_prefix(11, iota_tokens(13, 100));
  ASSERT_TRUE(mb.ok());
  EXPECT_EQ(mb->num_tokens, 12);
  EXPECT_EQ(mb->block_ids, (std::vector<int32_t>{3, 4, 5}));
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, prefix_hit_refreshes_lru_position) {
  auto pool = make_pool();
  run_and_release(pool, 1, iota_tokens(5));       // A: block 0 cached
  run_and_release(pool, 2, iota_tokens(5, 100));  // B: one block cached
  // A is older, but a hit then a release makes it the most recent.
  ASSERT_TRUE(pool.match_prefix(3, iota_tokens(5)).ok());
  pool.release(3);
  auto order = pool.eviction_order();
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[1], 0);
}

TEST(block_pool, refusal_counts_evictable_blocks) {
  auto pool = make_pool();
  run_and_release(pool, 1, iota_tokens(12 * kBlockLen + 1 - kBlockLen));  // 11 full blocks cached
  EXPECT_EQ(pool.usage().num_cached, 11);
  // 1 free + 11 cached = 12 available: a full-pool lease succeeds by evicting everything.
  auto all = pool.lease(2, 12);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(pool.usage().num_cached, 0);
  EXPECT_EQ(pool.usage().num_evictions, 11);
  // Nothing cached survives, so nothing hits.
  pool.release(2);
  auto m = pool.match_prefix(3, iota_tokens(20));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->num_tokens, 0);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, fork_shares_blocks_and_counts_references) {
  auto pool = make_pool();
  auto prompt = iota_tokens(9);
  ASSERT_TRUE(pool.lease(1, 3).has_value());
  ASSERT_TRUE(pool.commit_full_blocks(1, prompt).ok());
  // Choice 2 shares the 2 full prompt blocks; each now has two references.
  ASSERT_TRUE(pool.fork(1, 2, 2).ok());
  EXPECT_EQ(pool.ref_count(0), 2);
  EXPECT_EQ(pool.ref_count(1), 2);
  EXPECT_EQ(pool.ref_count(2), 1);
  // Shared blocks count once as used.
  EXPECT_EQ(pool.usage().num_used, 3);
  // The fork gets its own block for its partial tail.
  ASSERT_TRUE(pool.extend(2, 1).has_value());
  EXPECT_TRUE(pool.check_invariants().ok());
  // Releasing the parent keeps the shared blocks alive for the child.
  pool.release(1);
  EXPECT_EQ(pool.ref_count(0), 1);
  EXPECT_EQ(pool.usage().num_cached, 0);
  pool.release(2);
  // Now the hashed prompt blocks are cached, everything else free.
  EXPECT_EQ(pool.usage().num_cached, 2);
  EXPECT_EQ(pool.usage().num_free, 10);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, misuse_is_an_internal_error) {
  auto pool = make_pool();
  ASSERT_TRUE(pool.lease(1, 2).has_value());
  ASSERT_TRUE(pool.lease(2, 1).has_value());
  // Forking into a holder that already holds blocks would double-count its references.
  EXPECT_EQ(pool.fork(1, 2, 1).err().code, errc::internal);
  EXPECT_EQ(pool.fork(1, 1, 1).err().code, errc::internal);
  EXPECT_EQ(pool.fork(1, 3, 5).err().code, errc::internal);
  // match_prefix is for new holders only.
  EXPECT_EQ(pool.match_prefix(1, iota_tokens(9)).err().code, errc::internal);
  // Blocks are committed in order, with exactly block_seq_len tokens.
  std::vector<int32_t> blk{1, 2, 3, 4};
  EXPECT_EQ(pool.commit_full_block(1, 1, blk).err().code, errc::internal);
  EXPECT_EQ(pool.commit_full_block(1, 0, std::vector<int32_t>{1, 2}).err().code, errc::internal);
  EXPECT_EQ(pool.commit_full_block(7, 0, blk).err().code, errc::internal);
  // Nothing above changed the pool.
  EXPECT_EQ(pool.usage().num_used, 3);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, duplicate_block_is_kept_once) {
  auto pool = make_pool();
  auto prompt = iota_tokens(9);
  // Two holders compute the same prompt concurrently (no hit for the second: nothing cached yet).
  ASSERT_TRUE(pool.lease(1, 3).has_value());
  ASSERT_TRUE(pool.lease(2, 3).has_value());
  ASSERT_TRUE(pool.commit_full_blocks(1, prompt).ok());
  ASSERT_TRUE(pool.commit_full_blocks(2, prompt).ok());
  // Only holder 1's blocks are registered; holder 2's copies stay unhashed.
  EXPECT_TRUE(pool.is_cached(0));
  EXPECT_FALSE(pool.is_cached(3));
  pool.release(1);
  pool.release(2);
  EXPECT_EQ(pool.usage().num_cached, 2);
  EXPECT_EQ(pool.usage().num_free, 10);
  EXPECT_TRUE(pool.check_invariants().ok());
}

TEST(block_pool, reset_prefix_cache_frees_cached_blocks) {
  auto pool = make_pool();
  run_and_release(pool, 1, iota_tokens(9));
  EXPECT_EQ(pool.usage().num_cached, 2);
  pool.reset_prefix_cache();
  EXPECT_EQ(pool.usage().num_cached, 0);
  EXPECT_EQ(pool.usage().num_free, 12);
  EXPECT_TRUE(pool.check_invariants().ok());
}

// Conservation under a random mix of every operation: invariants after each step.
TEST(block_pool, conserves_blocks_under_random_operations) {
  std::mt19937_64 rng(20240611);
  // A tiny hash space forces collisions now and then, exercising the exact comparison.
  auto pool = make_pool(12, [](block_hash p, std::span<const int32_t> t) {
    return default_block_hash(p, t) % 5;
  });
  // Prompts from a small alphabet so that prefixes repeat.
  struct live_seq { std::vector<int32_t> tokens; };
  std::unordered_map<holder_id, live_seq> live;
  holder_id next_holder = 1;
  auto pick_live = [&]() -> holder_id {
    auto it = live.begin();
    std::advance(it, static_cast<long>(rng() % live.size()));
    return it->first;
  };
  for (int step = 0; step < 5000; ++step) {
    const int op = static_cast<int>(rng() % 6);
    if (op <= 1) {  // a new sequence: prefix match, then lease the rest
      holder_id h = next_holder++;
      std::vector<int32_t> tokens(1 + rng() % 14);
      for (auto& t : tokens) t = static_cast<int32_t>(rng() % 3);
      auto m = pool.match_prefix(h, tokens);
      ASSERT_TRUE(m.ok());
      ASSERT_EQ(m->num_tokens % kBlockLen, 0);
      ASSERT_LT(m->num_tokens, static_cast<int32_t>(tokens.size()));
      int32_t need = pool.blocks_for_tokens(static_cast<int64_t>(tokens.size())) -
                     static_cast<int32_t>(m->block_ids.size());
      if (pool.lease(h, need).has_value()) {
        ASSERT_TRUE(pool.commit_full_blocks(h, tokens).ok());
        live[h] = {tokens};
      } else {
        pool.release(h);  // refused: give back the hit blocks too
      }
    } else if (op == 2 && !live.empty()) {  // decode one token, growing by a block when needed
      holder_id h = pick_live();
      auto& s = live[h];
      s.tokens.push_back(static_cast<int32_t>(rng() % 3));
      int32_t need = pool.blocks_for_tokens(static_cast<int64_t>(s.tokens.size())) -
                     static_cast<int32_t>(pool.blocks_of(h).size());
      if (need > 0 && !pool.extend(h, need).has_value()) {
        pool.release(h);  // preempted
        live.erase(h);
      } else {
        ASSERT_TRUE(pool.commit_full_blocks(h, s.tokens).ok());
      }
    } else if (op == 3 && !live.empty()) {  // finish
      holder_id h = pick_live();
      pool.release(h);
      live.erase(h);
    } else if (op == 4 && !live.empty()) {  // fork the full blocks for another choice
      holder_id h = pick_live();
      auto s = live[h];
      auto full = static_cast<int32_t>(s.tokens.size()) / kBlockLen;
      holder_id child = next_holder++;
      ASSERT_TRUE(pool.fork(h, child, full).ok());
      s.tokens.resize(static_cast<size_t>(full) * kBlockLen);
      if (full > 0) live[child] = s;
    } else if (op == 5 && rng() % 50 == 0) {
      pool.reset_prefix_cache();
    }
    auto st = pool.check_invariants();
    ASSERT_TRUE(st.ok()) << "step " << step << ": " << st.err().to_string();
  }
  // Everything comes back at the end.
  for (auto& [h, s] : live) pool.release(h);
  auto u = pool.usage();
  EXPECT_EQ(u.num_used, 0);
  EXPECT_EQ(u.num_cached + u.num_free, 12);
  EXPECT_GT(u.prefix_hits, 0);
  EXPECT_GT(u.num_evictions, 0);
  EXPECT_TRUE(pool.check_invariants().ok());
}

}  // namespace
}  // namespace troupe
