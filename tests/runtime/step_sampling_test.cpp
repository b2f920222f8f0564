// Sampling where the logits are (runtime/step_sampling.h): the executor's samplers give exactly the
// tokens and logprobs the scheduler's host sampling gave on the same rows (greedy, seeded
// temperature/top-p, penalties, logit_bias, logprobs, a constraint); a serving step returns no rows;
// rows without a sampler (tests, a step from another process) still come back as rows; steady
// decode sampling allocates nothing, penalties on tokens never seen before included.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/step_sampling.h"
#include "support/allocation_counter.h"
#include "support/constraint_doubles.h"
#include "support/fixture_model.h"

namespace troupe {
namespace {

using testing::g_allocations;  // counted by this binary's operator new (counting_new.cpp)
using testing::g_counting;

constexpr int64_t kVocab = 300;

std::vector<float> random_rows(std::mt19937& rng, int64_t rows) {
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(static_cast<size_t>(rows * kVocab));
  for (float& x : v) x = d(rng);
  return v;
}

struct knobs {
  const char* name;
  sampling_params p;
  bool constrained = false;
};

std::vector<knobs> every_kind() {
  std::vector<knobs> out;
  sampling_params g;
  g.temperature = 0;
  out.push_back({"greedy", g});
  sampling_params t;
  t.temperature = 0.8f;
  t.top_p = 0.9f;
  t.top_k = 50;
  t.min_p = 0.01f;
  t.seed = 1234;
  t.logprobs = 3;
  out.push_back({"seeded temperature + top_p + top_k + min_p + logprobs", t});
  sampling_params pen = t;
  pen.repetition_penalty = 1.3f;
  pen.frequency_penalty = 0.7f;
  pen.presence_penalty = 0.5f;
  pen.lp_mode = logprobs_mode::processed;
  out.push_back({"penalties", pen});
  sampling_params bias = g;
  bias.logit_bias = {{7, 100.0f}, {8, -100.0f}, {250, 5.0f}};
  bias.logprobs = 2;
  out.push_back({"logit_bias + raw logprobs", bias});
  sampling_params c = t;
  out.push_back({"a constraint", c, true});
  return out;
}

std::shared_ptr<sampler> make_sampler(const knobs& k, const std::vector<int32_t>& prompt) {
  auto s = std::make_shared<sampler>(k.p, prompt, std::vector<int32_t>{2});
  if (k.constrained)
    s->set_constraint(std::make_unique<testing::choice_matcher>(
        std::vector<std::vector<int32_t>>{{11, 12, 13}, {11, 40, 41, 42}, {90}}, 2, false));
  return s;
}

// Per kind: one sequence per kind in one batch, several steps. The reference is the old host path:
// a twin sampler (same params, seed, prompt) fed a copy of the same row.
TEST(step_sampling, the_executor_samples_exactly_what_the_host_sampler_did) {
  const std::vector<int32_t> prompt{5, 6, 7, 11, 12};
  std::vector<knobs> kinds = every_kind();
  std::vector<std::shared_ptr<sampler>> exec, host;
  for (const knobs& k : kinds) {
    exec.push_back(make_sampler(k, prompt));
    host.push_back(make_sampler(k, prompt));
  }
  std::mt19937 rng(7);
  for (int step = 0; step < 6; ++step) {
    step_batch b;
    for (size_t i = 0; i < kinds.size(); ++i) {
      seq_step s;
      s.tokens = {1};
      s.sampling = exec[i];
      b.seqs.push_back(s);
    }
    std::vector<int32_t> row_seq;
    for (size_t i = 0; i < kinds.size(); ++i) row_seq.push_back(static_cast<int32_t>(i));
    std::vector<float> rows = random_rows(rng, static_cast<int64_t>(kinds.size()));
    const std::vector<float> original = rows;
    step_logits out;
    sample_rows(b, row_seq, rows.data(), kVocab, out);
    EXPECT_EQ(out.num_rows(), 0) << "a serving step returns no logits rows";
    EXPECT_TRUE(out.row_seq.empty());
    ASSERT_EQ(out.sampled.size(), kinds.size());
    for (size_t i = 0; i < kinds.size(); ++i) {
      SCOPED_TRACE(std::string(kinds[i].name) + ", step " + std::to_string(step));
      std::vector<float> row(original.begin() + static_cast<long>(i * kVocab),
                             original.begin() + static_cast<long>((i + 1) * kVocab));
      const sampled_token want = host[i]->sample(row);
      const sampled_seq& got = out.sampled[i];
      EXPECT_EQ(got.seq, static_cast<int32_t>(i));
      EXPECT_EQ(got.blocked, host[i]->constraint_blocked());
      if (got.blocked) continue;
      EXPECT_EQ(got.token.token, want.token);
      EXPECT_EQ(got.token.logprob, want.logprob);
      ASSERT_EQ(got.token.top.size(), want.top.size());
      for (size_t j = 0; j < want.top.size(); ++j) {
        EXPECT_EQ(got.token.top[j].token, want.top[j].token);
        EXPECT_EQ(got.token.top[j].logprob, want.top[j].logprob);
      }
      EXPECT_EQ(got.terminated, host[i]->constraint_terminated());
      EXPECT_EQ(exec[i]->num_generated(), host[i]->num_generated());
    }
  }
  // The constrained sequence only ever produced allowed tokens (11 first).
  EXPECT_GE(exec.back()->num_generated(), 1);
}

TEST(step_sampling, rows_without_a_sampler_or_asking_for_every_position_come_back_as_rows) {
  auto smp = std::make_shared<sampler>(sampling_params{}, std::vector<int32_t>{});
  step_batch b;
  seq_step plain;  // no sampler (a test, or a step that crossed processes): its row comes back
  plain.tokens = {1};
  b.seqs.push_back(plain);
  seq_step all;  // want_all_logits: every row comes back, nothing is sampled
  all.tokens = {1, 2};
  all.want_all_logits = true;
  all.sampling = smp;
  b.seqs.push_back(all);
  seq_step served;
  served.tokens = {3};
  served.sampling = smp;
  b.seqs.push_back(served);
  std::mt19937 rng(3);
  std::vector<float> rows = random_rows(rng, 4);
  const std::vector<float> original = rows;
  step_logits out;
  sample_rows(b, std::vector<int32_t>{0, 1, 1, 2}, rows.data(), kVocab, out);
  ASSERT_EQ(out.row_seq, (std::vector<int32_t>{0, 1, 1}));
  ASSERT_EQ(out.num_rows(), 3);
  EXPECT_TRUE(std::equal(out.data.begin(), out.data.end(), original.begin())) << "rows are returned untouched";
  ASSERT_EQ(out.sampled.size(), 1u);
  EXPECT_EQ(out.sampled[0].seq, 2);
  EXPECT_EQ(smp->num_generated(), 1) << "the sampler ran once, for the one row it owns";
}

// A real backend: forward_sampled answers with tokens only, equal to forward() + host sampling.
TEST(step_sampling, a_cpu_backend_answers_a_serving_step_with_tokens_only) {
  auto model = testing::fixture_backend("tiny-llama", 16, 16);
  const auto prompts = testing::fixture_prompts("tiny-llama");
  ASSERT_GE(prompts.size(), 2u);
  sampling_params p;
  p.temperature = 0.9f;
  p.seed = 99;
  p.logprobs = 2;
  step_batch b;
  std::vector<std::shared_ptr<sampler>> exec, host;
  for (size_t i = 0; i < 2; ++i) {
    seq_step s;
    s.tokens = prompts[i].input_ids;
    for (int32_t blk = 0; blk < 4; ++blk) s.block_table.push_back(static_cast<int32_t>(i * 4 + blk));
    exec.push_back(std::make_shared<sampler>(p, s.tokens));
    host.push_back(std::make_shared<sampler>(p, s.tokens));
    s.sampling = exec.back();
    b.seqs.push_back(s);
  }
  step_logits reference;
  ASSERT_TRUE(model->forward(b, reference).ok());  // writes the same K/V the next call rewrites
  ASSERT_EQ(reference.num_rows(), 2);
  step_logits rows, out;
  ASSERT_TRUE(model->forward_sampled(b, rows, out).ok());
  EXPECT_EQ(out.num_rows(), 0);
  EXPECT_TRUE(out.data.empty());
  ASSERT_EQ(out.sampled.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    std::vector<float> row(reference.row(static_cast<int64_t>(i)), reference.row(static_cast<int64_t>(i)) + reference.vocab_size);
    const sampled_token want = host[i]->sample(row);
    EXPECT_EQ(out.sampled[i].token.token, want.token);
    EXPECT_EQ(out.sampled[i].token.logprob, want.logprob);
    EXPECT_EQ(out.sampled[i].token.top.size(), 2u);
  }
  // The row buffer is reused: a second step of the same shape does not grow it.
  const size_t cap = rows.data.capacity();
  const float* where = rows.data.data();
  step_logits out2;
  ASSERT_TRUE(model->forward_sampled(b, rows, out2).ok());
  EXPECT_EQ(rows.data.capacity(), cap);
  EXPECT_EQ(rows.data.data(), where);
}

// Greedy and temperature decode (top_p, top_k, min_p, a seed) reuse the sampler's scratch: after
// the first sample nothing is allocated per sampled token.
TEST(step_sampling, steady_decode_sampling_allocates_nothing) {
  sampling_params g;
  g.temperature = 0;
  sampling_params t;
  t.temperature = 0.7f;
  t.top_p = 0.9f;
  t.min_p = 0.02f;
  t.seed = 11;
  sampling_params k = t;
  k.top_k = 40;
  std::mt19937 rng(5);
  const int64_t vocab = 49152;  // SmolLM2's
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> original(static_cast<size_t>(vocab));
  for (float& x : original) x = d(rng);
  for (const sampling_params& p : {g, t, k}) {
    sampler s(p, std::vector<int32_t>{1, 2, 3});
    std::vector<float> row = original;
    sampled_seq out = sample_row(s, row, 0);  // warm-up: scratch grows to the vocabulary
    testing::count_allocations(true);
    for (int i = 0; i < 20; ++i) {
      row = original;  // same size: no allocation
      out = sample_row(s, row, 0);
    }
    testing::count_allocations(false);
    EXPECT_EQ(testing::counted_allocations(), 0) << "temperature " << p.temperature << ", top_k " << p.top_k;
    EXPECT_GE(out.token.token, 0);
  }
}

// Repetition, frequency and presence penalties record every sampled token: a token seen for the
// first time must not allocate (the tables are sized at admission by the prompt and max_tokens).
TEST(step_sampling, penalties_allocate_nothing_for_tokens_never_seen_before) {
  sampling_params p;
  p.temperature = 0.8f;
  p.seed = 5;
  p.repetition_penalty = 1.3f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.4f;
  p.max_tokens = 256;
  std::mt19937 rng(9);
  const int64_t vocab = 49152;
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> original(static_cast<size_t>(vocab));
  sampler s(p, std::vector<int32_t>{1, 2, 3, 4, 5});
  std::vector<float> row(static_cast<size_t>(vocab));
  for (float& x : row) x = d(rng);
  sampled_seq out = sample_row(s, row, 0);  // warm-up: scratch grows to the vocabulary
  std::vector<int32_t> sampled;
  sampled.reserve(200);
  for (int i = 0; i < 200; ++i) {
    for (float& x : original) x = d(rng);  // a fresh row each step: mostly tokens not seen yet
    g_allocations = 0;
    g_counting = true;
    row = original;
    out = sample_row(s, row, 0);
    g_counting = false;
    sampled.push_back(out.token.token);
    ASSERT_EQ(g_allocations.load(), 0) << "sample " << i << " (token " << out.token.token << ")";
  }
  std::sort(sampled.begin(), sampled.end());
  EXPECT_GT(std::unique(sampled.begin(), sampled.end()) - sampled.begin(), 100);  // many first-seen tokens
}

}  // namespace
}  // namespace troupe
