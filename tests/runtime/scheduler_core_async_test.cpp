// Async scheduling in the scheduling core (plan_step(available, ahead)): each step is planned while
// the one before it is in flight and the executor feeds the tokens it sampled. Outputs must equal
// the synchronous loop's token for token, logprob for logprob, whatever ends a sequence (length,
// stop token, constraint, cancel), with preemption, chunked prefill, prefix hits and n choices;
// every block comes back; and a sequence that its pending token ends by length computes nothing more.
#include <gtest/gtest.h>

#include "support/scheduler_harness.h"

namespace troupe {
namespace {

using testing::constrained;
using testing::fixture_prompts;
using testing::harness;
using testing::limits;
using testing::outcome;

struct run_result {
  std::vector<outcome> out;  // per request, in the order added
  int64_t steps_ahead = 0, fed_sampled = 0, tokens_forwarded = 0, preemptions = 0;
};

// Runs `add` (which adds requests and returns their handles) to completion in one mode.
run_result run_mode(bool async, int32_t num_blocks, scheduler_limits lim,
                    const std::function<std::vector<uint64_t>(harness&)>& add,
                    const std::function<void(harness&, int)>& on_step = {}) {
  harness h(num_blocks, 16, lim);
  h.executor_samples = true;
  h.async = async;
  const auto ids = add(h);
  if (on_step) h.run([&](int step) { on_step(h, step); });
  else h.run();
  h.expect_all_blocks_back();
  run_result r;
  for (uint64_t id : ids) r.out.push_back(h.out[id]);
  r.steps_ahead = h.steps_ahead;
  r.fed_sampled = h.fed_sampled;
  r.tokens_forwarded = h.tokens_forwarded;
  r.preemptions = h.core.num_preemptions();
  return r;
}

void expect_same_outcomes(const run_result& sync, const run_result& async) {
  ASSERT_EQ(sync.out.size(), async.out.size());
  for (size_t i = 0; i < sync.out.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    const outcome &a = sync.out[i], &b = async.out[i];
    ASSERT_EQ(a.failure.has_value(), b.failure.has_value());
    EXPECT_EQ(b.tokens, a.tokens);
    EXPECT_EQ(b.finish, a.finish);
    EXPECT_EQ(b.usage.completion_tokens, a.usage.completion_tokens);
    EXPECT_EQ(b.usage.prompt_tokens, a.usage.prompt_tokens);
    ASSERT_EQ(b.lp.size(), a.lp.size());
    for (size_t c = 0; c < a.lp.size(); ++c) {
      ASSERT_EQ(b.lp[c].size(), a.lp[c].size());
      for (size_t k = 0; k < a.lp[c].size(); ++k) {
        EXPECT_EQ(b.lp[c][k].token, a.lp[c][k].token);
        EXPECT_EQ(b.lp[c][k].logprob, a.lp[c][k].logprob);  // same rows, same sampler: identical bits
        EXPECT_EQ(b.lp[c][k].top.size(), a.lp[c][k].top.size());
      }
    }
    ASSERT_EQ(b.prompt_lp.size(), a.prompt_lp.size());
    for (size_t c = 0; c < a.prompt_lp.size(); ++c) {
      ASSERT_EQ(b.prompt_lp[c].size(), a.prompt_lp[c].size());
      for (size_t k = 0; k < a.prompt_lp[c].size(); ++k) EXPECT_EQ(b.prompt_lp[c][k].logprob, a.prompt_lp[c][k].logprob);
    }
  }
}

std::vector<uint64_t> greedy_all(harness& h) {
  std::vector<uint64_t> ids;
  for (const auto& p : fixture_prompts("tiny-llama")) ids.push_back(h.add(p.input_ids));
  return ids;
}

TEST(scheduler_core_async, greedy_outputs_match_transformers_and_steps_overlap) {
  const auto prompts = fixture_prompts("tiny-llama");
  // Batched, with 16-token prefill chunks: the 300-token prompt prefills while the others decode.
  const auto r = run_mode(true, 128, limits(64, 16), greedy_all);
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_FALSE(r.out[i].failure);
    EXPECT_EQ(r.out[i].tokens[0], prompts[i].greedy) << "prompt " << i;
  }
  EXPECT_GT(r.steps_ahead, 20) << "steps were planned with one in flight";
  EXPECT_GT(r.fed_sampled, 50) << "the executor fed the tokens it sampled";
  // Every request ends by max_tokens: the pending last token is known to end it, so no position
  // is computed that the synchronous loop does not compute.
  const auto s = run_mode(false, 128, limits(64, 16), greedy_all);
  EXPECT_EQ(r.tokens_forwarded, s.tokens_forwarded);
  EXPECT_EQ(s.steps_ahead, 0);
}

TEST(scheduler_core_async, each_prompt_alone_matches_transformers) {
  for (const auto& p : fixture_prompts("tiny-llama")) {
    const auto r = run_mode(true, 64, limits(), [&](harness& h) { return std::vector<uint64_t>{h.add(p.input_ids)}; });
    ASSERT_FALSE(r.out[0].failure);
    EXPECT_EQ(r.out[0].tokens[0], p.greedy);
    EXPECT_EQ(r.out[0].finish[0], finish_reason::length);
    EXPECT_EQ(r.out[0].usage.completion_tokens, 24);
  }
}

// A small cache: the plan ahead never preempts (it declines, and the step is planned once the one
// in flight answered), so preemption by recompute still completes every request.
TEST(scheduler_core_async, a_small_cache_completes_every_request_by_preemption) {
  const auto prompts = fixture_prompts("tiny-llama");
  auto add = [&](harness& h) {
    std::vector<uint64_t> ids;
    for (int rep = 0; rep < 2; ++rep)
      for (const auto& p : prompts) ids.push_back(h.add(p.input_ids));
    return ids;
  };
  const auto r = run_mode(true, 26, limits(64, 512, false), add);
  EXPECT_GT(r.preemptions, 0);
  EXPECT_GT(r.steps_ahead, 0);
  for (size_t i = 0; i < r.out.size(); ++i) EXPECT_EQ(r.out[i].tokens[0], prompts[i % prompts.size()].greedy) << i;
}

// A stop token ends a sequence that is already in the next step: that step's token for it is
// computed for nothing and dropped; the output is the synchronous loop's.
TEST(scheduler_core_async, a_stop_token_costs_one_dropped_position_and_changes_nothing) {
  const auto prompts = fixture_prompts("tiny-llama");
  auto add = [&](harness& h) {
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < prompts.size(); ++i) {
      generation_request r;
      r.prompt_ids = prompts[i].input_ids;
      r.params.temperature = 0;
      r.params.max_tokens = 24;
      r.params.stop_token_ids = {prompts[i].greedy[3 + i]};
      ids.push_back(h.add(std::move(r)));
    }
    return ids;
  };
  const auto s = run_mode(false, 64, limits(), add);
  const auto a = run_mode(true, 64, limits(), add);
  expect_same_outcomes(s, a);
  int64_t stopped = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(a.out[i].finish[0], finish_reason::stop) << i;
    stopped += a.out[i].finish[0] == finish_reason::stop;
  }
  EXPECT_GE(a.tokens_forwarded, s.tokens_forwarded);
  EXPECT_LE(a.tokens_forwarded, s.tokens_forwarded + stopped);
}

// Seeded temperature/top-p sampling with penalties, logit_bias and logprobs, n = 2 choices, a
// constrained request, prompt logprobs and a small cache that preempts: identical to synchronous.
TEST(scheduler_core_async, sampled_outputs_equal_the_synchronous_loop) {
  const auto prompts = fixture_prompts("tiny-llama");
  auto add = [&](harness& h) {
    std::vector<uint64_t> ids = testing::add_sampled_requests(h, 2);
    ids.push_back(h.add(constrained(prompts[1].input_ids, false, 2)));
    ids.push_back(h.add(constrained(prompts[2].input_ids, true)));
    return ids;
  };
  for (int32_t blocks : {26, 128}) {
    SCOPED_TRACE("blocks " + std::to_string(blocks));
    const auto s = run_mode(false, blocks, limits(8, 64, false), add);
    const auto a = run_mode(true, blocks, limits(8, 64, false), add);
    if (blocks == 26) EXPECT_GT(a.preemptions, 0) << "the small cache preempts";
    EXPECT_GT(a.steps_ahead, 0);
    expect_same_outcomes(s, a);
  }
}

TEST(scheduler_core_async, prefix_hits_and_n_choices_give_the_same_tokens) {
  const auto p = fixture_prompts("tiny-llama")[3];  // 300 tokens
  auto add = [&](harness& h) {
    std::vector<uint64_t> ids;
    ids.push_back(h.add(p.input_ids));
    h.run();  // fills the prefix cache
    ids.push_back(h.add(p.input_ids));
    ids.push_back(h.add(fixture_prompts("tiny-llama")[2].input_ids, 24, 3));
    return ids;
  };
  const auto a = run_mode(true, 64, limits(), add);
  EXPECT_EQ(a.out[1].usage.cached_prompt_tokens, 288);
  EXPECT_EQ(a.out[1].tokens[0], p.greedy);
  ASSERT_EQ(a.out[2].tokens.size(), 3u);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(a.out[2].tokens[c], fixture_prompts("tiny-llama")[2].greedy) << c;
  expect_same_outcomes(run_mode(false, 64, limits(), add), a);
}

// A cancel while a step is in flight and the next one planned: both steps' answers for it are
// dropped, its blocks all come back, and the other request is untouched.
TEST(scheduler_core_async, a_cancel_between_planned_steps_returns_every_block) {
  const auto prompts = fixture_prompts("tiny-llama");
  uint64_t a = 0, b = 0;
  auto add = [&](harness& h) {
    a = h.add(prompts[3].input_ids, 200);
    b = h.add(prompts[1].input_ids, 24);
    return std::vector<uint64_t>{a, b};
  };
  for (int at : {2, 5, 9}) {
    const auto r = run_mode(true, 64, limits(), add, [&](harness& h, int step) {
      if (step == at) {
        EXPECT_EQ(h.core.num_steps_in_flight(), 1);
        h.core.cancel(a);
      }
    });
    EXPECT_EQ(r.out[0].finish[0], finish_reason::cancelled);
    EXPECT_LT(r.out[0].tokens[0].size(), 200u);
    EXPECT_EQ(r.out[1].tokens[0], prompts[1].greedy);
  }
}

// The plan ahead: nothing while no step is in flight, nothing while the executors are to be reset
// (they would not hold the sampled tokens), and a sequence its pending token ends by length sits out.
TEST(scheduler_core_async, the_plan_ahead_keeps_to_its_rules) {
  auto prompts = fixture_prompts("tiny-llama");
  harness h(64, 16, limits());
  const auto one = h.add(prompts[1].input_ids, 1);  // its first token is its last
  EXPECT_FALSE(h.core.plan_step(h.pool.num_available(), true)) << "no step in flight";
  auto plan = h.core.plan_step(h.pool.num_available());
  ASSERT_TRUE(plan);
  step_batch first = h.core.apply_blocks(apply_block_request(h.pool, *plan));
  ASSERT_EQ(first.seqs.size(), 1u);
  ASSERT_EQ(h.core.num_steps_in_flight(), 1);
  EXPECT_FALSE(h.core.plan_step(h.pool.num_available(), true)) << "its pending token ends it";
  const auto two = h.add(prompts[2].input_ids, 4);
  h.core.resend_step_state();
  EXPECT_FALSE(h.core.plan_step(h.pool.num_available(), true)) << "a reset is pending";
  step_logits out;
  ASSERT_TRUE(h.held.apply(first).ok());
  ASSERT_TRUE(h.model->forward_sampled(first, h.rows, out).ok());
  h.core.on_step_output(out);
  h.collect();
  EXPECT_EQ(h.out[one].tokens[0], std::vector<int32_t>(prompts[1].greedy.begin(), prompts[1].greedy.begin() + 1));
  h.executor_samples = true;
  h.async = true;
  h.run();
  EXPECT_EQ(h.out[two].tokens[0], std::vector<int32_t>(prompts[2].greedy.begin(), prompts[2].greedy.begin() + 4));
  h.expect_all_blocks_back();
}

}  // namespace
}  // namespace troupe
