// The scheduling policy driven synchronously over a real block pool and the real CPU forward pass
// of the tiny-llama fixture: greedy outputs must equal transformers' whatever the batching,
// chunking, preemption or prefix caching, and every block must come back.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "runtime/block_manager_core.h"
#include "runtime/persistent_batch.h"
#include "runtime/scheduler_core.h"
#include "support/constraint_doubles.h"
#include "support/fixture_model.h"
#include "support/scheduler_harness.h"

namespace troupe {
namespace {

using testing::fixture_backend;
using testing::fixture_prompts;
using testing::harness;
using testing::limits;
using testing::outcome;
using testing::constrained;

TEST(scheduler_core, each_prompt_alone_matches_transformers) {
  for (const auto& p : fixture_prompts("tiny-llama")) {
    harness h(64, 16, limits());
    const auto id = h.add(p.input_ids);
    h.run();
    ASSERT_FALSE(h.out[id].failure);
    EXPECT_EQ(h.out[id].tokens[0], p.greedy);
    EXPECT_EQ(h.out[id].finish[0], finish_reason::length);  // max_tokens reached
    EXPECT_EQ(h.out[id].usage.prompt_tokens, static_cast<int32_t>(p.input_ids.size()));
    EXPECT_EQ(h.out[id].usage.completion_tokens, 24);
    h.expect_all_blocks_back();
  }
}

TEST(scheduler_core, batched_and_chunked_prompts_match_alone) {
  // Four prompts in one batch; prefill chunks of at most 16 tokens, so the 300-token prompt takes
  // 19 steps of prefill while the others decode beside it.
  harness h(128, 16, limits(64, 16));
  auto prompts = fixture_prompts("tiny-llama");
  std::vector<uint64_t> ids;
  for (const auto& p : prompts) ids.push_back(h.add(p.input_ids));
  h.run();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(h.out[ids[i]].tokens[0], prompts[i].greedy) << "prompt " << i;
  h.expect_all_blocks_back();
}

TEST(scheduler_core, a_small_cache_completes_every_request_by_preemption) {
  // 26 blocks of 16 tokens: the 300-token prompt alone needs 21 with its output; the other three
  // cannot all stay resident beside it, so sequences are preempted and recomputed.
  harness h(26, 16, limits(64, 512, false));
  auto prompts = fixture_prompts("tiny-llama");
  std::vector<uint64_t> ids;
  for (int rep = 0; rep < 2; ++rep)
    for (const auto& p : prompts) ids.push_back(h.add(p.input_ids));
  h.run();
  EXPECT_GT(h.core.num_preemptions(), 0);
  for (size_t i = 0; i < ids.size(); ++i)
    EXPECT_EQ(h.out[ids[i]].tokens[0], prompts[i % prompts.size()].greedy) << "request " << i;
  h.expect_all_blocks_back();
}

TEST(scheduler_core, prefix_cache_hits_give_the_same_tokens) {
  harness h(64, 16, limits());
  auto p = fixture_prompts("tiny-llama")[3];  // 300 tokens
  const auto first = h.add(p.input_ids);
  h.run();
  const auto second = h.add(p.input_ids);
  h.run();
  EXPECT_EQ(h.out[first].usage.cached_prompt_tokens, 0);
  EXPECT_EQ(h.out[second].usage.cached_prompt_tokens, 288);  // 18 full blocks; the tail is recomputed
  EXPECT_GT(h.pool.usage().prefix_hits, 0);
  EXPECT_EQ(h.out[second].tokens[0], p.greedy);
  h.expect_all_blocks_back();
}

// A request that finishes in the step that completes its prompt (max_tokens 1: a scoring or
// background request) still leaves its full prompt blocks in the prefix cache.
TEST(scheduler_core, a_request_finishing_in_its_prefill_step_caches_its_prompt) {
  harness h(64, 16, limits());
  auto p = fixture_prompts("tiny-llama")[3];  // 300 tokens
  h.add(p.input_ids, 1);
  h.run();
  EXPECT_EQ(h.pool.usage().num_cached, 18);  // 18 full blocks; the tail is not hashed
  const auto second = h.add(p.input_ids, 1);
  h.run();
  EXPECT_EQ(h.out[second].usage.cached_prompt_tokens, 288);
  EXPECT_EQ(h.out[second].tokens[0], std::vector<int32_t>(p.greedy.begin(), p.greedy.begin() + 1));
  h.expect_all_blocks_back();
}

TEST(scheduler_core, n_choices_share_the_prompt_blocks) {
  harness h(64, 16, limits(64, 512, false));
  auto p = fixture_prompts("tiny-llama")[2];  // 33 tokens: 2 full blocks shared by fork
  const auto id = h.add(p.input_ids, 24, 3);
  h.run();
  ASSERT_EQ(h.out[id].tokens.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(h.out[id].tokens[i], p.greedy) << "choice " << i;  // greedy: identical
  EXPECT_EQ(h.out[id].usage.completion_tokens, 72);
  h.expect_all_blocks_back();
}

TEST(scheduler_core, cancel_mid_decode_returns_every_block) {
  harness h(64, 16, limits());
  auto prompts = fixture_prompts("tiny-llama");
  const auto a = h.add(prompts[3].input_ids, 200);
  const auto b = h.add(prompts[1].input_ids, 24);
  h.run([&](int step) {
    if (step == 5) h.core.cancel(a);
  });
  EXPECT_EQ(h.out[a].finish[0], finish_reason::cancelled);
  EXPECT_LT(h.out[a].tokens[0].size(), 200u);
  EXPECT_EQ(h.out[b].tokens[0], prompts[1].greedy);  // the other request is untouched
  h.expect_all_blocks_back();
}

TEST(scheduler_core, a_request_longer_than_the_cache_fails_clearly) {
  harness h(8, 16, limits());
  const auto id = h.add(fixture_prompts("tiny-llama")[3].input_ids);  // 324 tokens > 128
  h.run();
  ASSERT_TRUE(h.out[id].failure.has_value());
  EXPECT_EQ(h.out[id].failure->code, errc::context_too_long);
  h.expect_all_blocks_back();
}

TEST(scheduler_core, a_failed_step_fails_only_its_requests) {
  harness h(64, 16, limits());
  auto prompts = fixture_prompts("tiny-llama");
  const auto a = h.add(prompts[1].input_ids);
  auto plan = h.core.plan_step(h.pool.num_available());
  ASSERT_TRUE(plan);
  auto batch = h.core.apply_blocks(apply_block_request(h.pool, *plan));
  ASSERT_EQ(batch.seqs.size(), 1u);
  h.core.on_step_failed(error{errc::device_error, "injected"});
  h.collect();
  ASSERT_TRUE(h.out[a].failure);
  EXPECT_EQ(h.out[a].failure->code, errc::device_error);
  const auto b = h.add(prompts[2].input_ids);
  h.run();
  EXPECT_EQ(h.out[b].tokens[0], prompts[2].greedy);
  h.expect_all_blocks_back();
}

TEST(scheduler_core, batch_size_bounds_each_step) {
  harness h(64, 16, limits(2, 512));
  auto prompts = fixture_prompts("tiny-llama");
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(h.add(prompts[1].input_ids, 4));
  while (h.core.has_work()) {
    auto plan = h.core.plan_step(h.pool.num_available());
    h.collect();
    auto batch = h.core.apply_blocks(apply_block_request(h.pool, *plan));
    EXPECT_LE(batch.seqs.size(), 2u);
    step_logits l;
    ASSERT_TRUE(h.held.apply(batch).ok());
    ASSERT_TRUE(h.model->forward(batch, l).ok());
    h.core.on_step_output(l);
    h.collect();
  }
  for (auto id : ids) EXPECT_EQ(h.out[id].tokens[0].size(), 4u);
  h.expect_all_blocks_back();
}

// --- structured outputs: a choice_matcher double stands in for a compiled constraint ---------

bool is_choice(const std::vector<int32_t>& t) {
  return t == std::vector<int32_t>{10, 11, 12} || t == std::vector<int32_t>{20, 21};
}

TEST(scheduler_core, a_constrained_request_outputs_a_choice_then_stops) {
  harness h(64, 16, limits());
  auto prompts = fixture_prompts("tiny-llama");
  // Matcher done after EOS: the choice then EOS (token 2) with finish stop; every choice of n = 3.
  const auto a = h.add(constrained(prompts[1].input_ids, false, 3));
  // Matcher done as soon as a choice is complete: no EOS needed. Beside an unconstrained request.
  const auto b = h.add(constrained(prompts[2].input_ids, true));
  const auto c = h.add(prompts[1].input_ids);
  h.run();
  ASSERT_FALSE(h.out[a].failure);
  ASSERT_EQ(h.out[a].tokens.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    auto t = h.out[a].tokens[i];
    ASSERT_FALSE(t.empty());
    EXPECT_EQ(t.back(), 2) << "choice " << i << " ends with EOS";
    t.pop_back();
    EXPECT_TRUE(is_choice(t)) << "choice " << i;
    EXPECT_EQ(h.out[a].finish[i], finish_reason::stop);
  }
  EXPECT_TRUE(is_choice(h.out[b].tokens[0]));
  EXPECT_EQ(h.out[b].finish[0], finish_reason::stop);
  EXPECT_EQ(h.out[c].tokens[0], prompts[1].greedy) << "the unconstrained neighbour is untouched";
  h.expect_all_blocks_back();
}

TEST(scheduler_core, a_constraint_that_allows_nothing_more_stops_without_a_token) {
  harness h(64, 16, limits());
  // After a whole choice only EOS is allowed, but min_tokens masks EOS: the choice stops there.
  auto r = constrained(fixture_prompts("tiny-llama")[1].input_ids, false);
  r.params.min_tokens = 8;
  const auto id = h.add(std::move(r));
  h.run();
  ASSERT_FALSE(h.out[id].failure);
  EXPECT_TRUE(is_choice(h.out[id].tokens[0]));
  EXPECT_EQ(h.out[id].finish[0], finish_reason::stop);
  h.expect_all_blocks_back();
}

TEST(scheduler_core, a_spec_without_its_compiled_form_goes_through_the_compiler) {
  harness h(64, 16, limits());
  const auto prompt = fixture_prompts("tiny-llama")[1].input_ids;
  auto r = constrained(prompt, true);
  r.compiled = nullptr;  // as a request from a remote node arrives
  const auto none = h.add(r);
  int calls = 0;
  constraint_spec seen;
  h.core.set_constraint_compiler([&](const constraint_spec& spec) -> result<std::shared_ptr<const compiled_constraint>> {
    ++calls;
    seen = spec;
    if (spec.text == "bad") return make_error(errc::invalid_argument, "bad spec at $.x");
    return std::shared_ptr<const compiled_constraint>(
        std::make_shared<testing::compiled_choices>(std::vector<std::vector<int32_t>>{{30, 31}}, 2, true));
  });
  const auto compiled_here = h.add(r);
  auto bad = r;
  bad.constraint.text = "bad";
  const auto failed = h.add(bad);
  h.run();
  ASSERT_TRUE(h.out[none].failure) << "no compiler and no compiled form: refused, never unconstrained";
  EXPECT_EQ(h.out[none].failure->code, errc::unsupported);
  ASSERT_FALSE(h.out[compiled_here].failure);
  EXPECT_EQ(h.out[compiled_here].tokens[0], (std::vector<int32_t>{30, 31}));
  EXPECT_EQ(seen.type, constraint_spec::kind::choice);
  ASSERT_TRUE(h.out[failed].failure);
  EXPECT_EQ(h.out[failed].failure->message, "bad spec at $.x");
  EXPECT_EQ(calls, 2);
  h.expect_all_blocks_back();
}

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

// Prompt scoring: log_softmax of the transformers reference logits at position p - 1, taken at
// prompt token p, for every p >= 1.
std::vector<double> reference_prompt_logprobs(const std::string& fixture, size_t which) {
  std::ifstream in(testing::fixture_dir(fixture) + "/reference.json");
  const auto j = nlohmann::json::parse(in);
  const auto& p = j["prompts"][which];
  const auto ids = p["input_ids"].get<std::vector<int32_t>>();
  const auto& rows = p["logits_all_positions"];
  std::vector<double> out;
  for (size_t pos = 1; pos < ids.size(); ++pos) {
    const auto row = rows[pos - 1].get<std::vector<double>>();
    double mx = row[0], sum = 0;
    for (double v : row) mx = std::max(mx, v);
    for (double v : row) sum += std::exp(v - mx);
    out.push_back(row[static_cast<size_t>(ids[pos])] - mx - std::log(sum));
  }
  return out;
}

void expect_prompt_logprobs(const std::vector<token_logprobs>& got, const testing::fixture_prompt& p,
                            const std::vector<double>& ref, int32_t k) {
  ASSERT_EQ(got.size(), p.input_ids.size() - 1);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].token, p.input_ids[i + 1]) << "position " << i + 1;
    EXPECT_NEAR(got[i].logprob, ref[i], 2e-3) << "position " << i + 1;
    ASSERT_EQ(got[i].top.size(), static_cast<size_t>(k));
    for (size_t t = 1; t < got[i].top.size(); ++t) EXPECT_GE(got[i].top[t - 1].logprob, got[i].top[t].logprob);
    EXPECT_GE(got[i].top[0].logprob, got[i].logprob);
  }
}

// Chunked prefill (16-token chunks over a 33-token prompt), max_tokens 0 (score only), and a
// second identical request after the first filled the prefix cache: the scored positions are
// never served from the cache, so both carry every prompt token's logprob.
TEST(scheduler_core, prompt_logprobs_match_the_reference_whatever_the_chunking_or_cache) {
  const auto prompts = fixture_prompts("tiny-llama");
  harness h(64, 16, limits(64, 16, true));
  const size_t which = 2;  // 33 tokens: 2 full blocks the prefix cache could serve
  const auto ref = reference_prompt_logprobs("tiny-llama", which);
  auto add_scoring = [&](int32_t max_tokens) {
    generation_request r;
    r.prompt_ids = prompts[which].input_ids;
    r.params.temperature = 0;
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    r.params.prompt_logprobs = 3;
    return h.core.add_request(r, 0.0);
  };
  const auto plain = h.add(prompts[which].input_ids, 2);  // fills the prefix cache
  h.run();
  const auto scored = add_scoring(0);
  h.run();
  const auto again = add_scoring(4);
  h.run();
  EXPECT_TRUE(h.out[plain].prompt_lp.empty() || h.out[plain].prompt_lp[0].empty());
  for (auto id : {scored, again}) {
    ASSERT_FALSE(h.out[id].failure);
    EXPECT_EQ(h.out[id].usage.cached_prompt_tokens, 0);
    expect_prompt_logprobs(h.out[id].prompt_lp[0], prompts[which], ref, 3);
  }
  EXPECT_TRUE(h.out[scored].tokens[0].empty());
  EXPECT_EQ(h.out[scored].finish[0], finish_reason::length);
  EXPECT_EQ(h.out[scored].usage.completion_tokens, 0);
  EXPECT_EQ(h.out[again].tokens[0], std::vector<int32_t>(prompts[which].greedy.begin(), prompts[which].greedy.begin() + 4));
  h.expect_all_blocks_back();
}

// n = 2 with max_tokens 0: both choices finish and both carry the prompt's logprobs.
TEST(scheduler_core, scoring_only_with_n_choices_finishes_every_choice) {
  const auto prompts = fixture_prompts("tiny-llama");
  harness h(64, 16, limits());
  generation_request r;
  r.prompt_ids = prompts[2].input_ids;
  r.params.max_tokens = 0;
  r.params.prompt_logprobs = 0;
  r.n = 2;
  const auto id = h.core.add_request(r, 0.0);
  h.run();
  ASSERT_FALSE(h.out[id].failure);
  ASSERT_EQ(h.out[id].finish.size(), 2u);
  for (size_t c = 0; c < 2; ++c) {
    EXPECT_EQ(h.out[id].finish[c], finish_reason::length);
    EXPECT_EQ(h.out[id].prompt_lp[c].size(), prompts[2].input_ids.size() - 1) << "choice " << c;
  }
  h.expect_all_blocks_back();
}

// The executor's sampling (forward_sampled: each seq_step carries its sampler) and the core's host
// sampling of returned rows give the same outputs token for token and logprob for logprob: seeded
// temperature/top-p, penalties, logit_bias, n = 2, a constraint, preemption in a small cache.
TEST(scheduler_core, executor_side_sampling_equals_host_sampling) {
  auto run_all = [](bool executor, int64_t& preemptions) {
    harness h(26, 16, limits(8, 64, false));
    h.executor_samples = executor;
    const auto prompts = fixture_prompts("tiny-llama");
    std::vector<uint64_t> ids = testing::add_sampled_requests(h);
    ids.push_back(h.add(constrained(prompts[1].input_ids, false, 2)));
    h.run();
    h.expect_all_blocks_back();
    preemptions = h.core.num_preemptions();
    std::vector<outcome> out;
    for (uint64_t id : ids) out.push_back(h.out[id]);
    return out;
  };
  int64_t pre_host = 0, pre_exec = 0;
  const auto host = run_all(false, pre_host);
  const auto exec = run_all(true, pre_exec);
  EXPECT_GT(pre_host, 0) << "the small cache preempts";
  EXPECT_EQ(pre_exec, pre_host);
  ASSERT_EQ(host.size(), exec.size());
  for (size_t i = 0; i < host.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    ASSERT_FALSE(host[i].failure);
    ASSERT_FALSE(exec[i].failure);
    EXPECT_EQ(exec[i].tokens, host[i].tokens);
    EXPECT_EQ(exec[i].finish, host[i].finish);
    ASSERT_EQ(exec[i].lp.size(), host[i].lp.size());
    for (size_t c = 0; c < host[i].lp.size(); ++c) {
      ASSERT_EQ(exec[i].lp[c].size(), host[i].lp[c].size());
      for (size_t k = 0; k < host[i].lp[c].size(); ++k) {
        EXPECT_EQ(exec[i].lp[c][k].token, host[i].lp[c][k].token);
        EXPECT_EQ(exec[i].lp[c][k].logprob, host[i].lp[c][k].logprob);
        EXPECT_EQ(exec[i].lp[c][k].top.size(), host[i].lp[c][k].top.size());
      }
    }
  }
  EXPECT_FALSE(host[0].lp[0].empty()) << "logprobs were asked for and came";
}

}  // namespace
}  // namespace troupe
