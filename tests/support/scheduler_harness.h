// Test support: the scheduling core driven synchronously over a real block pool and the real CPU
// forward pass of a fixture, the way the scheduler actor drives it (synchronously, or with async
// scheduling's one step in flight), collecting each request's outcome. Header-only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/block_manager_core.h"
#include "runtime/persistent_batch.h"
#include "runtime/scheduler_core.h"
#include "support/constraint_doubles.h"
#include "support/fixture_model.h"

namespace troupe::testing {

struct outcome {
  std::vector<std::vector<int32_t>> tokens;  // per choice
  std::vector<finish_reason> finish;
  std::optional<error> failure;
  usage_info usage;
  std::vector<std::vector<token_logprobs>> prompt_lp;  // per choice, from its first event
  std::vector<std::vector<token_logprobs>> lp;         // per choice, generated tokens' logprobs
};

// Runs the core to completion the way the scheduler actor does, with the block manager's work done
// in-process. `on_step` may act between steps (cancel, ...).
struct harness {
  block_pool pool;
  std::shared_ptr<cpu_model> model;
  scheduler_core core;
  std::map<uint64_t, outcome> out;
  int steps = 0;
  bool executor_samples = false;  // forward_sampled (the executor's path) instead of rows
  step_logits rows;               // forward_sampled's reused row buffer
  persistent_batch held;          // the executor's: steps are deltas against it
  bool async = false;             // run_async: plan each step while the one before is in flight
  int64_t steps_ahead = 0;        // async: steps planned with one in flight
  int64_t fed_sampled = 0;        // async: sequences fed the token the executor had just sampled
  int64_t tokens_forwarded = 0;   // positions computed, over every step

  harness(int32_t num_blocks, int32_t bs, scheduler_limits lim)
      : pool(block_pool_options{num_blocks, bs, lim.prefix_caching, {}}),
        model(fixture_backend("tiny-llama", num_blocks, bs)),
        core(with(lim, num_blocks, bs), nullptr, {2}) {}

  static scheduler_limits with(scheduler_limits l, int32_t n, int32_t bs) {
    l.num_blocks = n;
    l.block_seq_len = bs;
    return l;
  }

  void collect() {
    for (auto& o : core.take_outputs()) {
      auto& r = out[o.request];
      if (o.failure) {
        r.failure = o.failure;
        continue;
      }
      const auto i = static_cast<size_t>(o.event.index);
      if (r.tokens.size() <= i) r.tokens.resize(i + 1), r.finish.resize(i + 1, finish_reason::none);
      if (r.lp.size() <= i) r.lp.resize(i + 1);
      r.lp[i].insert(r.lp[i].end(), o.event.logprobs.begin(), o.event.logprobs.end());
      r.tokens[i].insert(r.tokens[i].end(), o.event.token_ids.begin(), o.event.token_ids.end());
      if (r.prompt_lp.size() <= i) r.prompt_lp.resize(i + 1);
      if (!o.event.prompt_logprobs.empty()) r.prompt_lp[i] = o.event.prompt_logprobs;
      if (o.event.finish != finish_reason::none) {
        r.finish[i] = o.event.finish;
        r.usage = o.event.usage;
      }
    }
    apply_block_commits(pool, core.take_commits());
    auto rel = core.take_releases();
    pool.release_all_of_holders(rel);
  }

  void run(const std::function<void(int)>& on_step = {}) {
    if (async) return run_async(on_step);
    while (core.has_work()) {
      ASSERT_LT(++steps, 5000) << "no progress";
      if (on_step) on_step(steps);
      auto plan = core.plan_step(pool.num_available());
      collect();  // preemptions release before the alloc
      ASSERT_TRUE(plan.has_value()) << "work but nothing schedulable";
      block_reply reply = apply_block_request(pool, *plan);
      step_batch batch = core.apply_blocks(reply);
      collect();
      if (batch.seqs.empty()) continue;
      step_logits logits;
      ASSERT_TRUE(held.apply(batch).ok());
      tokens_forwarded += batch.num_tokens();
      ASSERT_TRUE((executor_samples ? model->forward_sampled(batch, rows, logits) : model->forward(batch, logits)).ok());
      if (executor_samples) ASSERT_EQ(logits.num_rows(), 0) << "a serving step returns no rows";
      core.on_step_output(logits);
      collect();
      ASSERT_TRUE(pool.check_invariants().ok());
    }
    collect();  // failures decided at add_request
  }

  // Async scheduling as the scheduler actor runs it: while a step is in flight the next one is
  // planned and run by the executor (which feeds the tokens it sampled), and only then does the
  // core take the older step's output.
  void run_async(const std::function<void(int)>& on_step) {
    ASSERT_TRUE(executor_samples) << "async scheduling needs the executor to sample";
    std::optional<step_logits> in_flight;
    auto execute = [&](const block_request& plan) -> std::optional<step_logits> {
      block_reply reply = apply_block_request(pool, plan);
      step_batch batch = core.apply_blocks(reply);
      collect();
      if (batch.seqs.empty()) return std::nullopt;
      for (const auto& s : batch.seqs) fed_sampled += s.feed_sampled ? 1 : 0;
      tokens_forwarded += batch.num_tokens();
      EXPECT_TRUE(held.apply(batch).ok());
      step_logits out;
      EXPECT_TRUE(model->forward_sampled(batch, rows, out).ok());
      held.record_sampled(batch, out);
      return out;
    };
    while (core.has_work() || in_flight) {
      ASSERT_LT(++steps, 5000) << "no progress";
      if (on_step) on_step(steps);
      if (!in_flight) {
        ASSERT_EQ(core.num_steps_in_flight(), 0);
        auto plan = core.plan_step(pool.num_available());
        collect();
        if (!plan) {
          ASSERT_FALSE(core.has_work()) << "work but nothing schedulable";
          break;
        }
        in_flight = execute(*plan);
        continue;
      }
      std::optional<step_logits> next;
      if (core.has_work()) {
        auto plan = core.plan_step(pool.num_available(), /*ahead=*/true);
        collect();
        if (plan) {
          next = execute(*plan);
          if (next) ++steps_ahead;
        }
      }
      core.on_step_output(*in_flight);
      collect();
      in_flight = std::move(next);
      ASSERT_TRUE(pool.check_invariants().ok());
    }
    ASSERT_EQ(core.num_steps_in_flight(), 0);
    collect();
  }

  uint64_t add(const std::vector<int32_t>& prompt, int32_t max_tokens = 24, int32_t n = 1) {
    generation_request r;
    r.prompt_ids = prompt;
    r.params.temperature = 0;
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    r.n = n;
    return core.add_request(r, 0.0);
  }

  uint64_t add(generation_request r) { return core.add_request(std::move(r), 0.0); }

  void expect_all_blocks_back() {
    auto u = pool.usage();
    EXPECT_EQ(u.num_used, 0) << "blocks still leased";
    EXPECT_EQ(u.num_used + u.num_cached + u.num_free, u.num_total);
    EXPECT_TRUE(pool.check_invariants().ok());
  }
};

inline scheduler_limits limits(int32_t batch = 64, int32_t prefill = 512, bool caching = true) {
  scheduler_limits l;
  l.max_batch_size = batch;
  l.max_prefill_tokens = prefill;
  l.prefix_caching = caching;
  return l;
}

// A structured-output request: a choice_matcher double stands in for the compiled constraint
// (choices {10, 11, 12} and {20, 21}, then EOS 2 unless it terminates on completion).
inline generation_request constrained(const std::vector<int32_t>& prompt, bool terminate_on_complete, int32_t n = 1) {
  generation_request r;
  r.prompt_ids = prompt;
  r.params.temperature = 0;
  r.params.max_tokens = 24;
  r.n = n;
  r.constraint = {constraint_spec::kind::choice, R"(["a","b"])"};
  r.compiled = std::make_shared<compiled_choices>(std::vector<std::vector<int32_t>>{{10, 11, 12}, {20, 21}}, 2,
                                                  terminate_on_complete);
  return r;
}

// Seeded temperature/top-p requests over the fixture's prompts, each asking for 2 logprobs; every
// other one with frequency and repetition penalties and a logit_bias; the first with n = 2;
// `prompt_logprobs_of` (>= 0) also scores that request's prompt. Returns the handles.
inline std::vector<uint64_t> add_sampled_requests(harness& h, int32_t prompt_logprobs_of = -1) {
  const auto prompts = fixture_prompts("tiny-llama");
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < prompts.size(); ++i) {
    generation_request r;
    r.prompt_ids = prompts[i].input_ids;
    r.params.max_tokens = 20;
    r.params.ignore_eos = true;
    r.params.temperature = 0.8f;
    r.params.top_p = 0.9f;
    r.params.seed = 100 + i;
    r.params.logprobs = 2;
    if (i % 2) {
      r.params.frequency_penalty = 0.5f;
      r.params.repetition_penalty = 1.2f;
      r.params.logit_bias = {{5, 3.0f}, {17, -50.0f}};
    }
    if (static_cast<int32_t>(i) == prompt_logprobs_of) r.params.prompt_logprobs = 2;
    r.n = i == 0 ? 2 : 1;
    ids.push_back(h.add(std::move(r)));
  }
  return ids;
}

}  // namespace troupe::testing
