// Events once per step: the scheduler sends each sink one batch per step (request handles, every
// event and failure of that step), so a sink serving many requests gets one message per step
// whatever the batch; the engine's event hub fans such batches out to each request's callbacks,
// with the outputs of transformers' greedy reference, and cancels by id.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
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

// Counts forward passes (one per step).
class counting_backend : public model_backend {
 public:
  explicit counting_backend(std::shared_ptr<model_backend> inner) : inner_(std::move(inner)) {}
  const model_config& config() const override { return inner_->config(); }
  int64_t num_kv_blocks() const override { return inner_->num_kv_blocks(); }
  int64_t block_seq_len() const override { return inner_->block_seq_len(); }
  status forward(const step_batch& b, step_logits& out) override {
    ++steps;
    if (const auto d = delay.load(); d.count() > 0) std::this_thread::sleep_for(d);
    return inner_->forward(b, out);
  }
  std::atomic<int64_t> steps{0};
  std::atomic<std::chrono::milliseconds> delay{0ms};

 private:
  std::shared_ptr<model_backend> inner_;
};

struct hub_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<counting_backend> backend;
  block_manager_actor bm;
  scheduler_actor sched;

  hub_fixture() {
    cfg.add_message_types<caf::id_block::troupe_api>();
    cfg.add_message_types<caf::id_block::troupe>();
    sys = std::make_unique<caf::actor_system>(cfg);
    backend = std::make_shared<counting_backend>(testing::fixture_backend("tiny-llama", 256, 16));
    bm = spawn_block_manager(*sys, block_pool_options{256, 16, true, {}});
    scheduler_config sc;
    sc.limits.max_batch_size = 64;
    sc.limits.max_prefill_tokens = 1024;
    sc.limits.block_seq_len = 16;
    sc.limits.num_blocks = 256;
    sc.limits.session_len = 1024;
    sc.max_concurrent_requests = 64;
    sc.max_queued_requests = 64;
    sc.vocab_size = 512;
    sc.eos_ids = {2};
    sched = spawn_scheduler(*sys, sc, nullptr, bm, [this] { return spawn_executor(*sys, backend); });
  }
  ~hub_fixture() {
    anon_send_exit(sched, caf::exit_reason::user_shutdown);
    anon_send_exit(bm, caf::exit_reason::user_shutdown);
    sched = nullptr;
    bm = nullptr;
    sys.reset();
  }
};

generation_request greedy(const std::vector<int32_t>& prompt, int32_t max_tokens, std::string id) {
  generation_request r;
  r.request_id = std::move(id);
  r.prompt_ids = prompt;
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

// A sink of many requests that records every batch it gets: (handle -> tokens) and batch sizes.
struct recorded {
  std::mutex mu;
  std::map<uint64_t, std::vector<int32_t>> tokens;
  std::map<uint64_t, bool> finished;
  std::vector<size_t> batch_sizes;
  int64_t num_single_events = 0;  // `event` messages without a handle (must be none)
};

sink_actor::behavior_type recording_sink(sink_actor::pointer, std::shared_ptr<recorded> rec) {
  return {
      [rec](event_atom, const generation_event&) {
        std::lock_guard<std::mutex> l(rec->mu);
        ++rec->num_single_events;
      },
      [rec](events_atom, const event_batch& evs) {
        std::lock_guard<std::mutex> l(rec->mu);
        rec->batch_sizes.push_back(evs.size());
        generation_event ev;
        for (size_t k = 0; k < evs.size(); ++k) {
          const auto& e = evs.entries[k];
          if (e.failed) continue;
          evs.read(k, ev);
          auto& t = rec->tokens[e.request];
          t.insert(t.end(), ev.token_ids.begin(), ev.token_ids.end());
          if (ev.finish != finish_reason::none) rec->finished[e.request] = true;
        }
      },
      [](fail_atom, const error&) {},
      [](cancel_atom) {},
      [](cancel_atom, const std::string&) {},
  };
}

TEST(event_batches, a_sink_of_many_requests_gets_one_message_per_step) {
  hub_fixture f;
  auto rec = std::make_shared<recorded>();
  auto sink = f.sys->spawn(recording_sink, rec);
  auto prompts = testing::fixture_prompts("tiny-llama");
  const int32_t num_requests = 8, max_tokens = 12;
  std::map<uint64_t, size_t> prompt_of;  // handle -> prompt index
  {
    caf::scoped_actor self{*f.sys};
    for (int32_t i = 0; i < num_requests; ++i) {
      const size_t p = static_cast<size_t>(i) % prompts.size();
      self->request(f.sched, 10s, submit_atom_v, greedy(prompts[p].input_ids, max_tokens, "batch-" + std::to_string(i)),
                    sink)
          .receive([&](uint64_t h) { prompt_of[h] = p; },
                   [&](caf::error& e) { ADD_FAILURE() << caf::to_string(e); });
    }
  }
  ASSERT_TRUE(testing::wait_until([&] {
    std::lock_guard<std::mutex> l(rec->mu);
    return rec->finished.size() == static_cast<size_t>(num_requests);
  }, 60s));
  std::lock_guard<std::mutex> l(rec->mu);
  EXPECT_EQ(rec->num_single_events, 0);
  // One batch per step at most (steps that only prefill part of a prompt send none).
  EXPECT_LE(static_cast<int64_t>(rec->batch_sizes.size()), f.backend->steps.load());
  EXPECT_GE(*std::max_element(rec->batch_sizes.begin(), rec->batch_sizes.end()), 2u)
      << "requests decoding together must share a batch";
  for (const auto& [h, p] : prompt_of) {
    const auto& want = prompts[p].greedy;
    ASSERT_EQ(rec->tokens[h].size(), static_cast<size_t>(max_tokens)) << h;
    EXPECT_TRUE(std::equal(rec->tokens[h].begin(), rec->tokens[h].end(), want.begin())) << "request " << h;
  }
  anon_send_exit(sink, caf::exit_reason::user_shutdown);
}

struct hub_result {
  std::vector<int32_t> tokens;
  std::string id;  // as the callback saw it
  finish_reason finish = finish_reason::none;
  std::optional<error> failure;
  bool done = false;
};

struct hub_results {
  std::mutex mu;
  std::map<std::string, hub_result> by_id;
  bool all_done(size_t n) {
    std::lock_guard<std::mutex> l(mu);
    if (by_id.size() < n) return false;
    return std::all_of(by_id.begin(), by_id.end(), [](auto& kv) { return kv.second.done; });
  }
};

void submit_to(event_hub& hub, hub_results& out, generation_request r) {
  const std::string id = r.request_id;
  {
    std::lock_guard<std::mutex> l(out.mu);
    out.by_id[id];
  }
  hub.submit(
      std::move(r),
      [&out, id](const generation_event& ev) {
        std::lock_guard<std::mutex> l(out.mu);
        auto& x = out.by_id[id];
        x.id = ev.request_id;
        x.tokens.insert(x.tokens.end(), ev.token_ids.begin(), ev.token_ids.end());
        if (ev.finish != finish_reason::none) {
          x.finish = ev.finish;
          x.done = true;
        }
      },
      [&out, id](const error& e) {
        std::lock_guard<std::mutex> l(out.mu);
        out.by_id[id].failure = e;
        out.by_id[id].done = true;
      });
}

TEST(event_hub, fans_each_step_out_to_its_requests_with_their_ids) {
  hub_fixture f;
  hub_results out;
  {
    event_hub hub(*f.sys, f.sched);
    auto prompts = testing::fixture_prompts("tiny-llama");
    for (size_t i = 0; i < 6; ++i)
      submit_to(hub, out, greedy(prompts[i % prompts.size()].input_ids, 10, "hub-request-with-a-long-id-" + std::to_string(i)));
    ASSERT_TRUE(testing::wait_until([&] { return out.all_done(6); }, 60s));
    std::lock_guard<std::mutex> l(out.mu);
    for (size_t i = 0; i < 6; ++i) {
      const std::string id = "hub-request-with-a-long-id-" + std::to_string(i);
      const auto& x = out.by_id[id];
      EXPECT_FALSE(x.failure) << id;
      EXPECT_EQ(x.id, id);
      EXPECT_EQ(x.finish, finish_reason::length);
      const auto& want = prompts[i % prompts.size()].greedy;
      ASSERT_EQ(x.tokens.size(), 10u);
      EXPECT_TRUE(std::equal(x.tokens.begin(), x.tokens.end(), want.begin())) << id;
    }
  }
}

TEST(event_hub, cancels_by_id_and_refusals_reach_the_right_request) {
  hub_fixture f;
  f.backend->delay = 20ms;
  hub_results out;
  event_hub hub(*f.sys, f.sched);
  auto prompts = testing::fixture_prompts("tiny-llama");
  submit_to(hub, out, greedy(prompts[0].input_ids, 200, "long"));  // >= 200 steps of 20 ms
  submit_to(hub, out, greedy(prompts[1].input_ids, 4, "short"));
  submit_to(hub, out, greedy({1, 2, 9999}, 4, "bad"));  // outside the vocabulary
  ASSERT_TRUE(testing::wait_until([&] {
    std::lock_guard<std::mutex> l(out.mu);
    return out.by_id["short"].done && out.by_id["bad"].done && !out.by_id["long"].tokens.empty();
  }, 30s));
  anon_send(hub.sink(), cancel_atom_v, std::string("long"));
  ASSERT_TRUE(testing::wait_until([&] { return out.all_done(3); }, 30s));
  std::lock_guard<std::mutex> l(out.mu);
  EXPECT_EQ(out.by_id["long"].finish, finish_reason::cancelled);
  EXPECT_LT(out.by_id["long"].tokens.size(), 200u);
  EXPECT_EQ(out.by_id["short"].finish, finish_reason::length);
  ASSERT_TRUE(out.by_id["bad"].failure);
  EXPECT_EQ(out.by_id["bad"].failure->code, errc::invalid_argument);
}

TEST(event_hub, a_scheduler_that_stops_fails_what_is_in_flight) {
  hub_fixture f;
  f.backend->delay = 20ms;
  hub_results out;
  event_hub hub(*f.sys, f.sched);
  auto prompts = testing::fixture_prompts("tiny-llama");
  submit_to(hub, out, greedy(prompts[0].input_ids, 500, "doomed"));
  ASSERT_TRUE(testing::wait_until([&] {
    std::lock_guard<std::mutex> l(out.mu);
    return !out.by_id["doomed"].tokens.empty();
  }, 30s));
  anon_send_exit(f.sched, caf::exit_reason::user_shutdown);
  ASSERT_TRUE(testing::wait_until([&] { return out.all_done(1); }, 30s));
  std::lock_guard<std::mutex> l(out.mu);
  ASSERT_TRUE(out.by_id["doomed"].failure);
  EXPECT_EQ(out.by_id["doomed"].failure->code, errc::draining);
}

}  // namespace
}  // namespace troupe
