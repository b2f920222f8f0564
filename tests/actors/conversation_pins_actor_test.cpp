// The block-manager actor with conversation pins: a pin holds a finished conversation's cached
// blocks, the available count the scheduler plans with still includes them, an allocation that
// needs them takes them (the pin yields, the request never waits), and every block comes back.
#include <gtest/gtest.h>

#include <numeric>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/block_manager_actor.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

constexpr int32_t k_blocks = 16;
constexpr int32_t k_block_len = 4;

std::vector<int32_t> tokens(int32_t n, int32_t start) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

struct pin_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  block_manager_actor bm;

  explicit pin_system(int64_t budget) {
    cfg.add_message_types<caf::id_block::troupe_api>();
    cfg.add_message_types<caf::id_block::troupe>();
    sys = std::make_unique<caf::actor_system>(cfg);
    bm = spawn_block_manager(*sys, block_pool_options{k_blocks, k_block_len, true, {}}, fault_inject_options{},
                             conversation_pin_options{budget, 3600});
  }
  ~pin_system() {
    anon_send_exit(bm, caf::exit_reason::user_shutdown);
    bm = nullptr;
    sys.reset();
  }

  block_reply alloc(caf::scoped_actor& self, block_request req) {
    block_reply out;
    bool ok = false;
    self->request(bm, 5s, alloc_atom_v, std::move(req))
        .receive([&](block_reply& r) { out = std::move(r); ok = true; },
                 [&](caf::error&) { ADD_FAILURE() << "block manager error"; });
    EXPECT_TRUE(ok);
    return out;
  }
  conversation_pin_stats pins(caf::scoped_actor& self) {
    conversation_pin_stats out;
    self->request(bm, 5s, pin_stats_atom_v)
        .receive([&](conversation_pin_stats& s) { out = s; }, [&](caf::error&) { ADD_FAILURE() << "block manager error"; });
    return out;
  }
  block_pool_usage usage(caf::scoped_actor& self) {
    block_pool_usage out;
    self->request(bm, 5s, stats_atom_v)
        .receive([&](block_pool_usage& u) { out = u; }, [&](caf::error&) { ADD_FAILURE() << "block manager error"; });
    return out;
  }
  // A request that computed `t` and finished: committed and released into the prefix cache.
  void finish_request(caf::scoped_actor& self, uint64_t holder, const std::vector<int32_t>& t) {
    block_request req;
    req.starts.push_back(block_start{holder, t, static_cast<int32_t>(t.size()), true, 0, 0});
    ASSERT_TRUE(alloc(self, req).starts.at(0).ok);
    block_commit_batch commits;
    commits.add(holder, 0, t);
    self->send(bm, commit_atom_v, std::move(commits));
    self->send(bm, release_atom_v, std::vector<uint64_t>{holder});
  }
};

TEST(conversation_pins_actor, a_pin_yields_to_a_request_and_every_block_comes_back) {
  pin_system s(8);
  caf::scoped_actor self{*s.sys};
  const auto conv = tokens(13, 0);  // 3 full blocks
  s.finish_request(self, 1, conv);
  self->send(s.bm, pin_atom_v, conversation_pin_request{77, conv});
  EXPECT_EQ(s.pins(self).num_pinned_blocks, 3);
  EXPECT_EQ(s.usage(self).num_used, 3);
  // The scheduler is told every block is available: pins never hold a request back.
  EXPECT_EQ(s.alloc(self, block_request{}).num_available, k_blocks);
  // A request that needs every block gets them: the pin gave way.
  block_request big;
  big.starts.push_back(block_start{2, tokens(64, 1000), 64, true, 0, 0});
  block_reply r = s.alloc(self, big);
  ASSERT_TRUE(r.starts.at(0).ok);
  EXPECT_EQ(r.starts[0].blocks.size(), static_cast<size_t>(k_blocks));
  const conversation_pin_stats p = s.pins(self);
  EXPECT_EQ(p.num_pins, 0);
  EXPECT_EQ(p.num_dropped_pressure, 1);
  self->send(s.bm, release_atom_v, std::vector<uint64_t>{2});
  const block_pool_usage u = s.usage(self);
  EXPECT_EQ(u.num_used, 0);
  EXPECT_EQ(u.num_free + u.num_cached, k_blocks);
}

TEST(conversation_pins_actor, the_next_turn_hits_the_pinned_history_and_unpin_returns_it) {
  pin_system s(8);
  caf::scoped_actor self{*s.sys};
  const auto conv = tokens(13, 0);
  s.finish_request(self, 1, conv);
  self->send(s.bm, pin_atom_v, conversation_pin_request{5, conv});
  // Other traffic churns through the rest of the cache.
  s.finish_request(self, 2, tokens(52, 5000));
  auto next = conv;
  for (int32_t t : tokens(8, 900)) next.push_back(t);
  block_request turn;
  turn.starts.push_back(block_start{3, next, static_cast<int32_t>(next.size()), true, 0, 0});
  block_reply r = s.alloc(self, turn);
  ASSERT_TRUE(r.starts.at(0).ok);
  EXPECT_EQ(r.starts[0].num_cached_tokens, 12);  // the whole pinned history
  self->send(s.bm, release_atom_v, std::vector<uint64_t>{3});
  self->send(s.bm, unpin_atom_v, uint64_t{5});
  EXPECT_EQ(s.pins(self).num_pins, 0);
  EXPECT_EQ(s.usage(self).num_used, 0);
  // Prefix statistics count the requests' lookups only, not the pin's.
  const block_pool_usage u = s.usage(self);
  EXPECT_EQ(u.prefix_hits, 12);
}

TEST(conversation_pins_actor, without_a_budget_nothing_is_pinned) {
  pin_system s(0);
  caf::scoped_actor self{*s.sys};
  s.finish_request(self, 1, tokens(13, 0));
  self->send(s.bm, pin_atom_v, conversation_pin_request{1, tokens(13, 0)});
  EXPECT_EQ(s.pins(self).num_pinned_blocks, 0);
  EXPECT_EQ(s.usage(self).num_used, 0);
}

}  // namespace
}  // namespace troupe
