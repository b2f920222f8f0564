// The device sampler's math (runtime/sampling_math.h, run here by one host "thread") against the
// CPU sampler: over random rows and knobs, the same tokens (greedy and seeded draws), logprobs and
// penalty state; and its filters against a textbook sort-based reference (kept set, probabilities).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/sampling_math.h"
#include "runtime/sampling_rows.h"
#include "runtime/step_batch.h"

namespace troupe {
namespace {

// Random logits; `ties` rounds them to quarters so equal logits meet at every cut.
std::vector<float> random_row(std::mt19937_64& rng, int64_t vocab, bool ties) {
  std::normal_distribution<float> n(0.0f, 3.0f);
  std::vector<float> row(static_cast<size_t>(vocab));
  for (float& v : row) v = ties ? std::round(n(rng) * 4.0f) / 4.0f : n(rng);
  return row;
}

sampling_params random_params(std::mt19937_64& rng, int64_t vocab) {
  auto pick = [&](auto... v) {
    using T = std::common_type_t<decltype(v)...>;
    const T all[] = {static_cast<T>(v)...};
    return all[rng() % sizeof...(v)];
  };
  sampling_params p;
  p.temperature = pick(0.0f, 0.0f, 0.3f, 0.7f, 1.0f, 1.5f);
  p.top_k = pick(-1, 0, 1, 3, 40, 1500);
  p.top_p = pick(1.0f, 0.9f, 0.5f, 0.1f);
  p.min_p = pick(0.0f, 0.0f, 0.05f, 0.3f);
  p.repetition_penalty = pick(1.0f, 1.0f, 1.3f, 0.8f);
  p.presence_penalty = pick(0.0f, 0.0f, 0.5f, -1.0f);
  p.frequency_penalty = pick(0.0f, 0.0f, 0.4f);
  p.seed = rng();
  p.logprobs = pick(-1, -1, 0, 5, 20);
  p.lp_mode = rng() % 2 ? logprobs_mode::raw : logprobs_mode::processed;
  p.max_tokens = 64;
  p.min_tokens = pick(0, 0, 3);
  p.stop_token_ids = {static_cast<int32_t>(rng() % vocab)};
  // Distinct tokens: two nonzero biases for one token are the CPU sampler's alone (tested below).
  for (int i = 0, n = pick(0, 0, 1, 4); i < n; ++i) {
    const auto t = static_cast<int32_t>(rng() % vocab);
    if (std::none_of(p.logit_bias.begin(), p.logit_bias.end(), [&](const auto& b) { return b.first == t; }))
      p.logit_bias.emplace_back(t, pick(-100.0f, -2.5f, 3.0f, 100.0f));
  }
  return p;
}

// One step of the device path on the host: build the row, process it, record the answer.
struct device_path {
  std::vector<smath::row_edit> edits = std::vector<smath::row_edit>(8192);
  std::vector<int32_t> edit_of;
  sampled_seq step(sampler& s, std::vector<float> row) {
    if (edit_of.size() != row.size()) edit_of.assign(row.size(), -1);
    sampling_rows_out out{edits.data(), static_cast<int32_t>(edits.size()), 0, edit_of};
    smath::row_params p;
    const bool built = build_sampling_row(s, static_cast<int64_t>(row.size()), out, p);
    EXPECT_TRUE(built);
    EXPECT_TRUE(std::all_of(edit_of.begin(), edit_of.end(), [](int32_t v) { return v == -1; }));
    smath::serial_block b;
    smath::row_shared sh;
    smath::row_result r;
    smath::process(b, row.data(), static_cast<int64_t>(row.size()), p, edits.data(), sh, r);
    return finish_sampling_row(s, r, 0);
  }
};

// Masked tokens (min_tokens) have logprob -inf on both sides.
void expect_logprob(float got, float want) {
  if (std::isinf(want)) {
    EXPECT_EQ(got, want);
  } else {
    EXPECT_NEAR(got, want, 1e-5);
  }
}

TEST(sampling_math, matches_cpu_sampler_token_for_token_over_random_rows_and_knobs) {
  std::mt19937_64 rng(2026);
  device_path dev;
  int draws = 0, greedy = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t vocab = std::vector<int64_t>{7, 100, 1000, 5003}[rng() % 4];
    const sampling_params p = random_params(rng, vocab);
    std::vector<int32_t> prompt(rng() % 30);
    for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % vocab);
    const std::vector<int32_t> eos = {static_cast<int32_t>(rng() % vocab)};
    sampler cpu(p, prompt, eos), gpu(p, prompt, eos);
    const bool ties = rng() % 2;
    for (int step = 0; step < 6; ++step) {
      std::vector<float> row = random_row(rng, vocab, ties);
      std::vector<float> cpu_row = row;
      const sampled_token want = cpu.sample(cpu_row);
      const sampled_seq got = dev.step(gpu, row);
      SCOPED_TRACE(testing::Message() << "trial " << trial << " step " << step << " vocab " << vocab << " t "
                                      << p.temperature << " k " << p.top_k << " p " << p.top_p << " min_p "
                                      << p.min_p << " ties " << ties);
      ASSERT_EQ(got.token.token, want.token);
      (p.temperature < smath::kGreedyEps ? greedy : draws) += 1;
      if (p.logprobs < 0) continue;
      expect_logprob(got.token.logprob, want.logprob);
      ASSERT_EQ(got.token.top.size(), want.top.size());
      for (size_t j = 0; j < want.top.size(); ++j) {
        EXPECT_EQ(got.token.top[j].token, want.top[j].token) << j;
        expect_logprob(got.token.top[j].logprob, want.top[j].logprob);
      }
    }
    EXPECT_EQ(gpu.num_generated(), cpu.num_generated());
  }
  EXPECT_GT(draws, 500);
  EXPECT_GT(greedy, 300);
}

// Textbook filters: a full best-first sort, min_p, top_k, top_p; probabilities in double.
std::vector<double> reference_probs(const std::vector<float>& l, const smath::row_params& p) {
  const size_t n = l.size();
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  const double lmax = l[order[0]];
  std::vector<double> w(n, 0.0);
  const size_t k = p.top_k > 0 && static_cast<size_t>(p.top_k) < n ? static_cast<size_t>(p.top_k) : n;
  const double thr = p.min_p > 0 ? lmax + p.temperature * std::log(p.min_p) : -INFINITY;
  for (size_t r = 0; r < k; ++r)
    if (l[order[r]] >= thr) w[order[r]] = std::exp((l[order[r]] - lmax) / p.temperature);
  if (p.top_p < 1.0f) {
    const double keep = p.top_p * std::accumulate(w.begin(), w.end(), 0.0);
    double before = 0.0;
    for (int32_t id : order) {
      if (before >= keep) w[id] = 0.0;
      before += w[id];
    }
  }
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  for (double& v : w) v /= total;
  return w;
}

// The filters the draw uses, as probabilities: the draw's distribution, measured with u swept.
std::vector<double> drawn_probs(const std::vector<float>& l, smath::row_params p) {
  std::vector<double> prob(l.size(), 0.0);
  smath::serial_block b;
  smath::row_shared sh;
  // The token drawn at u is the first whose cumulative weight passes u * total: sweeping u over a
  // fine grid gives each kept token a share equal to its probability (to the grid's step).
  constexpr int kSteps = 4000;
  for (int i = 0; i < kSteps; ++i) {
    p.uniform = (i + 0.5) / kSteps;
    prob[static_cast<size_t>(smath::sample_filtered(b, l.data(), static_cast<int64_t>(l.size()), p, sh))] += 1.0 / kSteps;
  }
  return prob;
}

TEST(sampling_math, filters_keep_the_reference_set_with_its_probabilities) {
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t vocab = std::vector<int64_t>{5, 64, 700}[rng() % 3];
    const sampling_params sp = random_params(rng, vocab);
    smath::row_params p;
    p.temperature = std::max(sp.temperature, 0.5f);
    p.top_k = sp.top_k;
    p.top_p = sp.top_p;
    p.min_p = sp.min_p;
    const std::vector<float> l = random_row(rng, vocab, rng() % 2);
    const std::vector<double> want = reference_probs(l, p);
    const std::vector<double> got = drawn_probs(l, p);
    SCOPED_TRACE(testing::Message() << "trial " << trial << " k " << p.top_k << " p " << p.top_p << " min_p " << p.min_p);
    for (size_t i = 0; i < l.size(); ++i) {
      if (want[i] == 0.0) ASSERT_EQ(got[i], 0.0) << "token " << i << " is filtered out by the reference";
      // Each kept token owns a run of grid points: its share is its probability +- 2 steps.
      EXPECT_NEAR(got[i], want[i], 2.0 / 4000 + 1e-9) << "token " << i;
    }
  }
}

TEST(sampling_math, exact_filter_weights_match_the_reference_within_1e_6) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t vocab = std::vector<int64_t>{3, 50, 2000, 40000}[rng() % 4];
    const sampling_params sp = random_params(rng, vocab);
    smath::row_params p;
    p.temperature = std::max(sp.temperature, 0.2f);
    p.top_k = sp.top_k;
    p.top_p = sp.top_p;
    p.min_p = sp.min_p;
    const std::vector<float> l = random_row(rng, vocab, rng() % 2);
    smath::serial_block b;
    smath::row_shared sh;
    const smath::filter f = smath::make_filter(b, l.data(), vocab, p, sh);
    std::vector<double> got(l.size());
    for (size_t i = 0; i < l.size(); ++i) got[i] = f.weight(static_cast<int64_t>(i));
    const double total = std::accumulate(got.begin(), got.end(), 0.0);
    const std::vector<double> want = reference_probs(l, p);
    for (size_t i = 0; i < l.size(); ++i) {
      ASSERT_EQ(got[i] > 0.0, want[i] > 0.0) << "trial " << trial << " token " << i;
      ASSERT_NEAR(got[i] / total, want[i], 1e-6) << "trial " << trial << " token " << i;
    }
  }
}

TEST(sampling_math, a_row_that_needs_the_cpu_sampler_is_refused_untouched) {
  sampling_params p;
  p.seed = 1;
  p.logit_bias = {{3, 1.0f}, {3, 2.0f}};  // two nonzero biases for one token: (l + 1) + 2 != l + 3
  sampler s(p, {});
  std::vector<smath::row_edit> edits(4);
  std::vector<int32_t> edit_of(10, -1);
  sampling_rows_out out{edits.data(), 4, 0, edit_of};
  smath::row_params rp;
  EXPECT_FALSE(build_sampling_row(s, 10, out, rp));
  EXPECT_EQ(out.used, 0);
  EXPECT_TRUE(std::all_of(edit_of.begin(), edit_of.end(), [](int32_t v) { return v == -1; }));
  // Out of room: a repetition penalty over a 6-token prompt needs 6 edits.
  sampling_params q;
  q.seed = 9;
  q.temperature = 0.8f;
  q.repetition_penalty = 1.2f;
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
  sampler t(q, prompt);
  sampler ref(q, prompt);
  EXPECT_FALSE(build_sampling_row(t, 10, out, rp));
  EXPECT_EQ(out.used, 0);
  EXPECT_EQ(t.next_uniform(), ref.next_uniform()) << "a refused row must not consume the draw";
}

}  // namespace
}  // namespace troupe
