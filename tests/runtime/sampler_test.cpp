// sampler: greedy, seeded determinism, distribution sanity (chi-square on a 4-token vocabulary with a
// fixed seed), each filter on a hand-made row, penalty arithmetic, logprobs, min_tokens masking and
// validate_sampling_params' messages.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace troupe {
namespace {

// Logits whose softmax (temperature 1) is exactly `probs`.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

sampling_params seeded(uint64_t seed) {
  sampling_params p;
  p.seed = seed;
  return p;
}

// Draws `n` tokens from the same row and counts them.
std::vector<int> histogram(sampling_params p, const std::vector<float>& row, int n) {
  sampler s(p, {});
  std::vector<int> counts(row.size(), 0);
  for (int i = 0; i < n; ++i) {
    auto l = row;
    ++counts[static_cast<size_t>(s.sample(l).token)];
  }
  return counts;
}

double chi_square(const std::vector<int>& counts, const std::vector<double>& expected_probs) {
  const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
  double chi = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected_probs[i] == 0.0) continue;
    const double e = n * expected_probs[i];
    chi += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi;
}

constexpr double kChi2df3p001 = 16.27;  // chi-square critical value, 3 degrees of freedom, p = 0.001
const std::vector<double> kProbs{0.1, 0.2, 0.3, 0.4};

TEST(sampler, greedy_takes_argmax_and_lowest_id_on_ties) {
  sampling_params p;
  p.temperature = 0.0f;
  sampler s(p, {});
  std::vector<float> row{0.5f, 2.0f, -1.0f, 2.0f};
  // Tokens 1 and 3 tie: the lower id wins.
  EXPECT_EQ(s.sample(row).token, 1);
  std::vector<float> row2{0.5f, 2.0f, -1.0f, 2.5f};
  EXPECT_EQ(s.sample(row2).token, 3);
}

TEST(sampler, same_seed_gives_same_tokens) {
  std::mt19937 gen(1);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<std::vector<float>> rows(200, std::vector<float>(500));
  for (auto& r : rows) for (auto& v : r) v = nd(gen);
  auto run = [&](uint64_t seed, float top_p) {
    auto p = seeded(seed);
    p.top_p = top_p;
    sampler s(p, {});
    std::vector<int32_t> out;
    for (auto r : rows) out.push_back(s.sample(r).token);
    return out;
  };
  // Same seed: identical streams, with and without a filter.
  EXPECT_EQ(run(42, 1.0f), run(42, 1.0f));
  EXPECT_EQ(run(42, 0.8f), run(42, 0.8f));
  // Another seed: a different stream.
  EXPECT_NE(run(42, 1.0f), run(43, 1.0f));
}

TEST(sampler, draws_follow_the_softmax) {
  auto counts = histogram(seeded(7), logits_of(kProbs), 20000);
  // Deterministic (fixed seed) and well inside the 0.1% tail.
  EXPECT_LT(chi_square(counts, kProbs), kChi2df3p001);
}

TEST(sampler, temperature_sharpens_and_flattens) {
  auto p = seeded(8);
  p.temperature = 0.5f;
  // T = 0.5 squares the probabilities: 1, 4, 9, 16 out of 30.
  auto sharp = histogram(p, logits_of(kProbs), 20000);
  EXPECT_LT(chi_square(sharp, {1 / 30.0, 4 / 30.0, 9 / 30.0, 16 / 30.0}), kChi2df3p001);
  // T = 2 takes square roots.
  p.temperature = 2.0f;
  std::vector<double> roots;
  for (double q : kProbs) roots.push_back(std::sqrt(q));
  const double z = std::accumulate(roots.begin(), roots.end(), 0.0);
  for (auto& r : roots) r /= z;
  auto flat = histogram(p, logits_of(kProbs), 20000);
  EXPECT_LT(chi_square(flat, roots), kChi2df3p001);
}

TEST(sampler, top_k_keeps_the_k_best) {
  auto p = seeded(9);
  p.top_k = 2;
  auto counts = histogram(p, logits_of(kProbs), 20000);
  // Only tokens 2 and 3 survive, renormalized to 3/7 and 4/7.
  EXPECT_EQ(counts[0] + counts[1], 0);
  EXPECT_LT(chi_square(counts, {0, 0, 3 / 7.0, 4 / 7.0}), 10.83);  // 1 degree of freedom
}

TEST(sampler, top_p_keeps_the_smallest_nucleus) {
  auto p = seeded(10);
  // 0.35: the best token (0.4) alone covers it.
  p.top_p = 0.35f;
  auto one = histogram(p, logits_of(kProbs), 2000);
  EXPECT_EQ(one[3], 2000);
  // 0.45: the mass before token 2 (0.4) is below 0.45, so it is kept; token 1 is not.
  p.top_p = 0.45f;
  auto two = histogram(p, logits_of(kProbs), 20000);
  EXPECT_EQ(two[0] + two[1], 0);
  EXPECT_LT(chi_square(two, {0, 0, 3 / 7.0, 4 / 7.0}), 10.83);
}

TEST(sampler, min_p_drops_tokens_below_a_fraction_of_the_best) {
  auto p = seeded(11);
  // Threshold 0.6 * 0.4 = 0.24: tokens with 0.1 and 0.2 go.
  p.min_p = 0.6f;
  auto counts = histogram(p, logits_of(kProbs), 20000);
  EXPECT_EQ(counts[0] + counts[1], 0);
  EXPECT_GT(counts[2], 0);
  // min_p = 1 keeps only the best token.
  p.min_p = 1.0f;
  EXPECT_EQ(histogram(p, logits_of(kProbs), 500)[3], 500);
}

TEST(sampler, top_p_on_a_large_vocab_matches_brute_force) {
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> row(50000);
  for (auto& v : row) v = nd(gen);
  // Brute force nucleus of 0.9 at temperature 1: sort everything.
  std::vector<int32_t> ids(row.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
  const double lse = log_sum_exp(row);
  std::set<int32_t> nucleus;
  double before = 0.0;
  for (int32_t id : ids) {
    if (before >= 0.9) break;
    nucleus.insert(id);
    before += std::exp(row[id] - lse);
  }
  auto p = seeded(12);
  p.top_p = 0.9f;
  sampler s(p, {});
  std::set<int32_t> seen;
  for (int i = 0; i < 1000; ++i) {
    auto l = row;
    seen.insert(s.sample(l).token);
  }
  // Every draw lies in the nucleus (thousands of tokens), and many of its tokens show up.
  for (int32_t t : seen) EXPECT_TRUE(nucleus.count(t)) << t;
  EXPECT_GT(seen.size(), 300u);
  EXPECT_GT(nucleus.size(), 1000u);
}

TEST(sampler, penalties_follow_vllm_arithmetic) {
  sampling_params p;
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  p.logprobs = 4;
  p.lp_mode = logprobs_mode::processed;  // the logprobs show the penalized row
  const std::vector<int32_t> prompt{1, 3};
  sampler s(p, prompt);
  const std::vector<float> raw{3.0f, 1.0f, 0.0f, -1.0f};
  // The top logprobs give the processed logits up to one constant: compare differences to token 2,
  // which is never penalized (processed logit 0).
  auto processed = [](const sampled_token& t) {
    std::vector<float> l(4);
    float ref = 0;
    for (auto& e : t.top) if (e.token == 2) ref = e.logprob;
    for (auto& e : t.top) l[static_cast<size_t>(e.token)] = e.logprob - ref;
    return l;
  };
  // Step 1: repetition over the prompt only: 1 / 2 = 0.5 (positive divided), -1 * 2 = -2.
  auto row = raw;
  auto t1 = s.sample(row);
  EXPECT_EQ(t1.token, 0);
  auto l1 = processed(t1);
  EXPECT_NEAR(l1[0], 3.0f, 1e-5);
  EXPECT_NEAR(l1[1], 0.5f, 1e-5);
  EXPECT_NEAR(l1[3], -2.0f, 1e-5);
  // Step 2: token 0 is now seen and generated once: 3 / 2 - 0.5 * 1 - 0.25 = 0.75.
  row = raw;
  auto t2 = s.sample(row);
  EXPECT_NEAR(processed(t2)[0], 0.75f, 1e-5);
  EXPECT_EQ(t2.token, 0);
  // Step 3: generated twice: 1.5 - 1.0 - 0.25 = 0.25 < 0.5, so greedy moves to token 1.
  row = raw;
  auto t3 = s.sample(row);
  EXPECT_NEAR(processed(t3)[0], 0.25f, 1e-5);
  EXPECT_EQ(t3.token, 1);
}

TEST(sampler, logit_bias_applies_before_penalties_and_can_flip_greedy) {
  sampling_params p;
  p.temperature = 0.0f;
  p.logit_bias = {{2, 5.0f}, {0, -100.0f}};
  p.repetition_penalty = 2.0f;
  sampler s(p, std::vector<int32_t>{2});
  std::vector<float> row{3.0f, 1.0f, 0.0f, -1.0f};
  // Token 2: (0 + 5) / 2 = 2.5 (bias first, then the penalty divides it) beats token 1 (1.0).
  EXPECT_EQ(s.sample(row).token, 2);
  EXPECT_NEAR(row[2], 2.5f, 1e-6);
  EXPECT_NEAR(row[0], -97.0f, 1e-4);
}

// logprobs_mode: raw (the default) reports the model's row before bias and penalties, processed the
// row greedy decoding followed; the sampled token is the same either way.
TEST(sampler, raw_logprobs_ignore_bias_and_penalties_processed_ones_show_them) {
  const std::vector<float> model_row{3.0f, 1.0f, 0.0f, -1.0f};
  const double lse = log_sum_exp(model_row);
  for (logprobs_mode mode : {logprobs_mode::raw, logprobs_mode::processed}) {
    sampling_params p;
    p.temperature = 0.0f;
    p.logit_bias = {{3, 10.0f}};  // token 3: -1 + 10 = 9, the new argmax
    p.presence_penalty = 1.0f;
    p.logprobs = 2;
    p.lp_mode = mode;
    sampler s(p, {});
    auto row = model_row;
    const sampled_token t = s.sample(row);
    EXPECT_EQ(t.token, 3);
    ASSERT_EQ(t.top.size(), 2u);
    if (mode == logprobs_mode::raw) {
      EXPECT_NEAR(t.logprob, -1.0 - lse, 1e-5);
      EXPECT_EQ(t.top[0].token, 0);
      EXPECT_NEAR(t.top[0].logprob, 3.0 - lse, 1e-5);
      EXPECT_EQ(t.top[1].token, 1);
      // Second step: token 3 now carries the presence penalty too; raw still ignores it.
      row = model_row;
      const sampled_token t2 = s.sample(row);
      EXPECT_NEAR(t2.logprob, model_row[static_cast<size_t>(t2.token)] - lse, 1e-5);
    } else {
      const std::vector<float> processed{3.0f, 1.0f, 0.0f, 9.0f};
      const double plse = log_sum_exp(processed);
      EXPECT_NEAR(t.logprob, 9.0 - plse, 1e-5);
      EXPECT_EQ(t.top[0].token, 3);
      EXPECT_EQ(t.top[1].token, 0);
    }
  }
}

TEST(sampler, negative_presence_penalty_encourages_repeats) {
  sampling_params p;
  p.temperature = 0.0f;
  p.presence_penalty = -2.0f;
  sampler s(p, {});
  std::vector<float> row{1.0f, 0.0f, 1.5f};
  EXPECT_EQ(s.sample(row).token, 2);
  std::vector<float> row2{2.0f, 0.0f, 1.0f};
  // 1 + 2 = 3 beats 2.
  EXPECT_EQ(s.sample(row2).token, 2);
}

TEST(sampler, logprobs_are_normalized_and_ignore_temperature) {
  std::mt19937 gen(5);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> row(1000);
  for (auto& v : row) v = nd(gen);
  auto p = seeded(1);
  p.logprobs = 20;
  p.temperature = 0.7f;
  sampler s(p, {});
  auto l = row;
  auto t = s.sample(l);
  ASSERT_EQ(t.top.size(), 20u);
  // Best first, and the first is the argmax.
  EXPECT_EQ(t.top[0].token, static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin()));
  for (size_t i = 1; i < t.top.size(); ++i) EXPECT_GE(t.top[i - 1].logprob, t.top[i].logprob);
  // The chosen token's logprob is from the same log-softmax.
  const double lse = log_sum_exp(row);
  EXPECT_NEAR(t.logprob, row[static_cast<size_t>(t.token)] - lse, 1e-5);
  // Over the whole vocabulary the probabilities sum to 1.
  auto all = top_logprobs(row, 1000, lse);
  double sum = 0.0;
  for (auto& e : all) sum += std::exp(e.logprob);
  EXPECT_NEAR(sum, 1.0, 1e-5);
  // Another temperature and a top_k filter report the same numbers (pre-temperature convention).
  p.temperature = 1.5f;
  p.top_k = 3;
  sampler s2(p, {});
  auto l2 = row;
  auto t2 = s2.sample(l2);
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(t2.top[i].token, t.top[i].token);
    EXPECT_FLOAT_EQ(t2.top[i].logprob, t.top[i].logprob);
  }
  // logprobs = 0: the chosen token's logprob, no list.
  p.logprobs = 0;
  sampler s3(p, {});
  auto l3 = row;
  EXPECT_TRUE(s3.sample(l3).top.empty());
}

TEST(sampler, min_tokens_masks_eos_and_stop_tokens) {
  sampling_params p;
  p.temperature = 0.0f;
  p.min_tokens = 2;
  p.stop_token_ids = {1};
  const std::vector<int32_t> eos{3};
  sampler s(p, {}, eos);
  // EOS (3) and the stop token (1) are the best two, but masked for the first 2 tokens.
  for (int i = 0; i < 2; ++i) {
    std::vector<float> row{0.0f, 4.0f, 1.0f, 5.0f};
    EXPECT_EQ(s.sample(row).token, 2);
  }
  std::vector<float> row{0.0f, 4.0f, 1.0f, 5.0f};
  EXPECT_EQ(s.sample(row).token, 3);
  // With ignore_eos only the stop token ids are masked.
  p.ignore_eos = true;
  sampler s2(p, {}, eos);
  std::vector<float> row2{0.0f, 4.0f, 1.0f, 5.0f};
  EXPECT_EQ(s2.sample(row2).token, 3);
}

// A Llama-3-sized row (128256 logits) with top-p 0.95 and 5 logprobs: every draw lies inside the
// nucleus and the top list is the row's true top 5, best first. (How fast is a benchmark's
// question; this test used to time it and failed under TSan, which proves nothing about the code.)
TEST(sampler, samples_a_llama3_sized_row_inside_the_nucleus) {
  std::mt19937 gen(6);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> row(128256);
  for (auto& v : row) v = nd(gen);
  std::vector<int32_t> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
  // The nucleus: the most likely tokens whose probabilities first reach 0.95.
  const double mx = row[order[0]];
  double z = 0;
  for (float v : row) z += std::exp(double(v) - mx);
  std::vector<bool> in_nucleus(row.size(), false);
  double mass = 0;
  for (int32_t t : order) {
    in_nucleus[t] = true;
    mass += std::exp(double(row[t]) - mx) / z;
    if (mass >= 0.95) break;
  }
  auto p = seeded(2);
  p.top_p = 0.95f;
  p.top_k = -1;
  p.logprobs = 5;
  sampler s(p, {});
  for (int i = 0; i < 50; ++i) {
    auto l = row;
    auto t = s.sample(l);
    ASSERT_GE(t.token, 0);
    ASSERT_LT(t.token, 128256);
    EXPECT_TRUE(in_nucleus[t.token]) << "draw " << i << ": token " << t.token << " outside the top-p nucleus";
    ASSERT_EQ(t.top.size(), 5u);
    for (size_t k = 0; k < 5; ++k) EXPECT_EQ(t.top[k].token, order[k]) << "top logprob " << k;
  }
}

TEST(sampler, validation_names_the_bad_knob) {
  auto bad = [](auto mutate, const char* needle) {
    sampling_params p;
    mutate(p);
    auto st = validate_sampling_params(p, 100);
    ASSERT_FALSE(st.ok()) << needle;
    EXPECT_EQ(st.err().code, errc::invalid_argument);
    EXPECT_NE(st.err().message.find(needle), std::string::npos) << st.err().message;
  };
  EXPECT_TRUE(validate_sampling_params(sampling_params{}, 100).ok());
  bad([](sampling_params& p) { p.temperature = -0.1f; }, "temperature");
  bad([](sampling_params& p) { p.temperature = std::nanf(""); }, "temperature");
  bad([](sampling_params& p) { p.top_p = 0.0f; }, "top_p");
  bad([](sampling_params& p) { p.top_p = 1.5f; }, "top_p");
  bad([](sampling_params& p) { p.top_k = -2; }, "top_k");
  bad([](sampling_params& p) { p.min_p = 1.1f; }, "min_p");
  bad([](sampling_params& p) { p.repetition_penalty = 0.0f; }, "repetition_penalty");
  bad([](sampling_params& p) { p.presence_penalty = 2.5f; }, "presence_penalty");
  bad([](sampling_params& p) { p.frequency_penalty = -3.0f; }, "frequency_penalty");
  bad([](sampling_params& p) { p.logit_bias = {{100, 1.0f}}; }, "outside the vocabulary");
  bad([](sampling_params& p) { p.logit_bias = {{5, 101.0f}}; }, "[-100, 100]");
  bad([](sampling_params& p) { p.logprobs = 21; }, "logprobs");
  bad([](sampling_params& p) { p.max_tokens = -1; }, "max_tokens");
  bad([](sampling_params& p) { p.prompt_logprobs = 21; }, "prompt_logprobs");
  bad([](sampling_params& p) { p.min_tokens = 20; }, "min_tokens");
  bad([](sampling_params& p) { p.stop = {""}; }, "stop strings");
  bad([](sampling_params& p) { p.stop_token_ids = {-1}; }, "stop_token_ids");
  // Edges that are allowed.
  sampling_params ok;
  ok.temperature = 0.0f;
  ok.top_k = 0;
  ok.min_p = 1.0f;
  ok.presence_penalty = -2.0f;
  ok.logprobs = 20;
  ok.logit_bias = {{99, -100.0f}};
  EXPECT_TRUE(validate_sampling_params(ok, 100).ok());
}

}  // namespace
}  // namespace troupe
