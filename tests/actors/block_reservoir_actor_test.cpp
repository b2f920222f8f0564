// The block manager off the critical path: a request decoding across many blocks asks the block
// manager for an allocation only at admission; its decode steps take blocks from the scheduler's
// reservoir (reported by `assign`), its tokens are transformers' greedy reference, and every block
// comes back. With the reservoir off, every step asks (the old path, still served).
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/block_manager_actor.h"
#include "actors/event_hub.h"
#include "actors/executor_actor.h"
#include "actors/scheduler_actor.h"
#include "support/fixture_model.h"
#include "support/wait_until.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

struct bm_counts {
  std::atomic<int64_t> allocs{0}, reserves{0}, assigns{0};
};

// Stands in front of the real block manager, counting what the scheduler asks; delegates keep the
// scheduler as the sender (the real one records it as the lease owner).
block_manager_actor::behavior_type counting_bm(block_manager_actor::pointer self, block_manager_actor real,
                                               std::shared_ptr<bm_counts> n) {
  return {
      [self, real, n](alloc_atom a, block_request& r) {
        ++n->allocs;
        return self->delegate(real, a, std::move(r));
      },
      [self, real, n](reserve_atom a, uint64_t h, int32_t k) {
        ++n->reserves;
        return self->delegate(real, a, h, k);
      },
      [self, real, n](assign_atom a, block_assignments& x) {
        ++n->assigns;
        return self->delegate(real, a, std::move(x));
      },
      [self, real](release_atom a, std::vector<uint64_t>& hs) { self->delegate(real, a, std::move(hs)); },
      [self, real](commit_atom a, block_commit_batch& cs) { self->delegate(real, a, std::move(cs)); },
      [self, real](stats_atom a) { return self->delegate(real, a); },
      [self, real](pin_atom a, conversation_pin_request& r) { self->delegate(real, a, std::move(r)); },
      [self, real](unpin_atom a, uint64_t key) { self->delegate(real, a, key); },
      [self, real](pin_stats_atom a) { return self->delegate(real, a); },
  };
}

struct result_box {
  std::mutex mu;
  std::vector<int32_t> tokens;
  bool done = false;
  std::optional<error> failure;
};

struct reservoir_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<model_backend> backend;
  std::shared_ptr<bm_counts> counts = std::make_shared<bm_counts>();
  block_manager_actor real_bm, bm;
  scheduler_actor sched;

  explicit reservoir_system(int32_t reservoir_blocks) {
    cfg.add_message_types<caf::id_block::troupe_api>();
    cfg.add_message_types<caf::id_block::troupe>();
    sys = std::make_unique<caf::actor_system>(cfg);
    backend = testing::fixture_backend("tiny-llama", 128, 16);
    real_bm = spawn_block_manager(*sys, block_pool_options{128, 16, true, {}});
    bm = sys->spawn(counting_bm, real_bm, counts);
    scheduler_config sc;
    sc.limits.max_batch_size = 16;
    sc.limits.max_prefill_tokens = 256;
    sc.limits.block_seq_len = 16;
    sc.limits.num_blocks = 128;
    sc.limits.session_len = 1024;
    sc.vocab_size = 512;
    sc.eos_ids = {2};
    sc.reservoir_blocks = reservoir_blocks;
    sched = spawn_scheduler(*sys, sc, nullptr, bm, [this] { return spawn_executor(*sys, backend); });
  }
  ~reservoir_system() {
    anon_send_exit(sched, caf::exit_reason::user_shutdown);
    anon_send_exit(bm, caf::exit_reason::user_shutdown);
    anon_send_exit(real_bm, caf::exit_reason::user_shutdown);
    sched = nullptr;
    bm = real_bm = nullptr;
    sys.reset();
  }
  engine_stats stats() {
    caf::scoped_actor self{*sys};
    engine_stats out;
    self->request(sched, 5s, stats_atom_v).receive([&](engine_stats& s) { out = s; }, [&](caf::error& e) {
      ADD_FAILURE() << caf::to_string(e);
    });
    return out;
  }
};

std::shared_ptr<result_box> run(reservoir_system& s, event_hub& hub, const std::vector<int32_t>& prompt, int32_t n,
                                 const std::string& id) {
  auto box = std::make_shared<result_box>();
  generation_request r;
  r.request_id = id;
  r.prompt_ids = prompt;
  r.params.temperature = 0;
  r.params.max_tokens = n;
  r.params.ignore_eos = true;
  hub.submit(
      r,
      [box](const generation_event& ev) {
        std::lock_guard<std::mutex> l(box->mu);
        box->tokens.insert(box->tokens.end(), ev.token_ids.begin(), ev.token_ids.end());
        if (ev.finish != finish_reason::none) box->done = true;
      },
      [box](const error& e) {
        std::lock_guard<std::mutex> l(box->mu);
        box->failure = e;
        box->done = true;
      });
  return box;
}

bool done(result_box& b) {
  std::lock_guard<std::mutex> l(b.mu);
  return b.done;
}

TEST(block_reservoir_actor, decode_steps_take_blocks_without_asking_the_block_manager) {
  reservoir_system s(8);
  event_hub hub(*s.sys, s.sched);
  auto prompt = testing::fixture_prompts("tiny-llama")[0];
  auto box = run(s, hub, prompt.input_ids, 100, "long-decode");  // crosses >= 6 block boundaries
  ASSERT_TRUE(testing::wait_until([&] { return done(*box); }, 60s));
  ASSERT_FALSE(box->failure) << box->failure->message;
  ASSERT_EQ(box->tokens.size(), 100u);
  EXPECT_TRUE(std::equal(prompt.greedy.begin(), prompt.greedy.end(), box->tokens.begin()));
  EXPECT_LE(s.counts->allocs.load(), 2) << "decode steps waited for the block manager";
  EXPECT_GE(s.counts->assigns.load(), 6) << "every new block is reported to the block manager";
  EXPECT_GE(s.counts->reserves.load(), 1);
  engine_stats st;
  ASSERT_TRUE(testing::wait_until([&] {
    st = s.stats();
    return st.num_blocks_used == 0 && st.num_requests_running == 0;
  }));
  EXPECT_EQ(st.num_blocks_used, 0);  // reservoir blocks count as free, and the request's came back
}

TEST(block_reservoir_actor, without_a_reservoir_each_step_asks_and_the_answers_match) {
  reservoir_system s(0);
  event_hub hub(*s.sys, s.sched);
  auto prompt = testing::fixture_prompts("tiny-llama")[0];
  auto box = run(s, hub, prompt.input_ids, 40, "asks");
  ASSERT_TRUE(testing::wait_until([&] { return done(*box); }, 60s));
  ASSERT_FALSE(box->failure);
  EXPECT_TRUE(std::equal(prompt.greedy.begin(), prompt.greedy.end(), box->tokens.begin()));
  EXPECT_GE(s.counts->allocs.load(), 40);
  EXPECT_EQ(s.counts->reserves.load(), 0);
  EXPECT_EQ(s.counts->assigns.load(), 0);
}

}  // namespace
}  // namespace troupe
