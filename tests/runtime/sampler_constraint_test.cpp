// sampler with a structured-output constraint (a choice_matcher double): disallowed tokens never
// come out, greedy or stochastic; bias and penalties compose with the mask; the matcher advances
// with every sampled token; a mask that allows nothing stops the sequence instead of emitting junk.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "runtime/sampler.h"
#include "support/constraint_doubles.h"

namespace troupe {
namespace {

using testing::choice_matcher;

sampling_params greedy() {
  sampling_params p;
  p.temperature = 0.0f;
  return p;
}

TEST(sampler_constraint, greedy_takes_the_best_allowed_token) {
  sampler s(greedy(), {});
  s.set_constraint(std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{2, 5}, {3}}, 7, false));
  std::vector<float> row{9.0f, 8.0f, 1.0f, 2.0f, 6.0f, 0.0f, 0.0f, 0.0f};
  // 0, 1 and 4 beat the allowed tokens 2 and 3 but are masked; 3 is the best allowed.
  EXPECT_EQ(s.sample(row).token, 3);
  EXPECT_FALSE(s.constraint_blocked());
  // After "3" the choice is complete: only EOS (7) is allowed.
  std::vector<float> row2{9.0f, 8.0f, 1.0f, 2.0f, 6.0f, 0.0f, 0.0f, -5.0f};
  EXPECT_EQ(s.sample(row2).token, 7);
  EXPECT_TRUE(s.constraint_terminated());
}

// Async scheduling samples a sequence once more in the step planned before its end was seen: a
// complete (or blocked) constraint then allows nothing, asks its matcher nothing and records nothing.
TEST(sampler_constraint, after_the_constraint_ends_nothing_is_sampled) {
  sampler s(greedy(), {});
  auto m = std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{2, 5}, {3}}, 7, false);
  const choice_matcher* matcher = m.get();
  s.set_constraint(std::move(m));
  std::vector<float> row{9.0f, 8.0f, 1.0f, 2.0f, 6.0f, 0.0f, 0.0f, 0.0f};
  EXPECT_EQ(s.sample(row).token, 3);
  std::vector<float> row2{9.0f, 8.0f, 1.0f, 2.0f, 6.0f, 0.0f, 0.0f, -5.0f};
  EXPECT_EQ(s.sample(row2).token, 7);
  ASSERT_TRUE(s.constraint_terminated());
  const int fills = matcher->num_fills;
  const int32_t generated = s.num_generated();
  for (int i = 0; i < 2; ++i) {
    std::vector<float> row3{9.0f, 8.0f, 1.0f, 2.0f, 6.0f, 0.0f, 0.0f, 0.0f};
    s.sample(row3);
    EXPECT_TRUE(s.constraint_blocked());
    EXPECT_EQ(matcher->num_fills, fills) << "the ended matcher is not asked for a mask";
    EXPECT_EQ(s.num_generated(), generated);
  }
  EXPECT_EQ(matcher->output(), (std::vector<int32_t>{3}));
}

TEST(sampler_constraint, stochastic_draws_stay_inside_the_mask) {
  sampling_params p;
  p.seed = 42;
  p.temperature = 1.5f;
  p.top_p = 0.95f;
  std::set<int32_t> seen;
  for (int i = 0; i < 300; ++i) {
    sampler s(p, {});
    p.seed = *p.seed + 1;
    s.set_constraint(std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{1}, {3}, {64}}, -1, true));
    std::vector<float> row(130, 3.0f);  // three mask words; the allowed tokens span two of them
    row[1] = 0.5f;
    row[3] = 0.4f;
    row[64] = 0.6f;
    const int32_t t = s.sample(row).token;
    ASSERT_TRUE(t == 1 || t == 3 || t == 64) << t;
    EXPECT_TRUE(s.constraint_terminated());
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 3u) << "each allowed token should be drawn at these near-equal logits";
}

TEST(sampler_constraint, logit_bias_and_penalties_compose_with_the_mask) {
  sampling_params p = greedy();
  p.logit_bias = {{0, 100.0f}, {2, 5.0f}};  // 0 is disallowed: its bias cannot get it through
  sampler s(p, {});
  s.set_constraint(std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{1}, {2}}, -1, true));
  std::vector<float> row{0.0f, 3.0f, 1.0f, 0.0f};
  EXPECT_EQ(s.sample(row).token, 2) << "the bias among allowed tokens still counts";

  sampling_params q = greedy();
  q.presence_penalty = 2.0f;
  sampler s2(q, {});
  s2.set_constraint(std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{1, 1}, {1, 2}}, -1, true));
  std::vector<float> r1{0.0f, 1.0f, 0.0f};
  EXPECT_EQ(s2.sample(r1).token, 1);
  std::vector<float> r2{5.0f, 1.5f, 0.0f};  // 1 has the better logit but pays the presence penalty
  EXPECT_EQ(s2.sample(r2).token, 2);
}

TEST(sampler_constraint, the_matcher_follows_every_sampled_token_and_a_clone_keeps_its_state) {
  sampler s(greedy(), {});
  auto m = std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{4, 1, 2}}, 0, false);
  const choice_matcher* seen = m.get();
  s.set_constraint(std::move(m));
  std::vector<int32_t> out;
  for (int i = 0; i < 4 && !s.constraint_terminated(); ++i) {
    std::vector<float> row{0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
    out.push_back(s.sample(row).token);
    if (i == 1) {
      auto copy = s.constraint()->clone();
      token_mask mk;
      mk.resize(6);
      copy->fill_mask(mk);
      EXPECT_TRUE(mk.test(2));  // the clone is at the same place: after 4, 1 comes 2
      EXPECT_FALSE(mk.test(4));
    }
  }
  EXPECT_EQ(out, (std::vector<int32_t>{4, 1, 2, 0}));
  EXPECT_EQ(seen->output(), (std::vector<int32_t>{4, 1, 2}));
  EXPECT_TRUE(s.constraint_terminated());
  EXPECT_TRUE(seen->mask_was_clear) << "the reused mask buffer must be cleared before each fill";
}

TEST(sampler_constraint, nothing_allowed_blocks_instead_of_sampling_junk) {
  // The constraint is complete (only EOS may follow) but min_tokens masks EOS: nothing is left.
  sampling_params p = greedy();
  p.min_tokens = 5;
  p.max_tokens = 10;
  const std::vector<int32_t> eos{3};
  sampler s(p, {}, eos);
  s.set_constraint(std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{1}}, 3, false));
  std::vector<float> row{0.0f, 1.0f, 2.0f, 3.0f};
  EXPECT_EQ(s.sample(row).token, 1);
  EXPECT_FALSE(s.constraint_blocked());
  std::vector<float> row2{0.0f, 1.0f, 2.0f, 3.0f};
  s.sample(row2);
  EXPECT_TRUE(s.constraint_blocked());
  EXPECT_EQ(s.num_generated(), 1) << "a blocked sample is not a generated token";
}

TEST(sampler_constraint, tokens_past_the_tokenizer_vocabulary_are_never_sampled) {
  // The logits row (model vocabulary, padded) is longer than what the matcher knows; the padding
  // has the best logits but no mask bit.
  sampler s(greedy(), {});
  s.set_constraint(std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{5}}, -1, true), 100);
  std::vector<float> row(200, 0.0f);
  for (size_t i = 100; i < row.size(); ++i) row[i] = 50.0f;
  EXPECT_EQ(s.sample(row).token, 5);
}

TEST(sampler_constraint, a_tokenizer_vocabulary_larger_than_the_row_is_safe) {
  // The matcher may allow an id the model has no logit for (tokenizer 300, row 70): the mask is
  // sized for it, and only ids inside the row can come out.
  sampler s(greedy(), {});
  s.set_constraint(std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{290}, {7}}, -1, true), 300);
  std::vector<float> row(70, 0.0f);
  EXPECT_EQ(s.sample(row).token, 7);
}

TEST(sampler_constraint, logprobs_describe_the_constrained_distribution_without_masked_entries) {
  sampling_params p = greedy();
  p.logprobs = 5;
  sampler s(p, {});
  s.set_constraint(std::make_unique<choice_matcher>(std::vector<std::vector<int32_t>>{{1}, {2}}, -1, true));
  std::vector<float> row{5.0f, 1.0f, 1.0f, 4.0f};
  const sampled_token t = s.sample(row);
  EXPECT_EQ(t.token, 1);
  EXPECT_NEAR(t.logprob, std::log(0.5), 1e-5) << "two equally likely allowed tokens";
  ASSERT_EQ(t.top.size(), 2u) << "only allowed tokens are alternatives";
  EXPECT_EQ(t.top[0].token, 1);
  EXPECT_EQ(t.top[1].token, 2);
}

TEST(sampler_constraint, without_a_constraint_nothing_changes) {
  sampler a(greedy(), {}), b(greedy(), {});
  b.set_constraint(nullptr);
  std::vector<float> r1{0.0f, 4.0f, 2.0f}, r2 = r1;
  EXPECT_EQ(a.sample(r1).token, b.sample(r2).token);
  EXPECT_FALSE(b.constraint_terminated());
  EXPECT_FALSE(b.constraint_blocked());
}

}  // namespace
}  // namespace troupe
