// GPU penalties and sampling: penalties vs a CPU reference; greedy; seeded determinism; top-k,
// top-p and min-p keep draws inside their sets; the draw follows the distribution.
#include <cmath>
#include <map>
#include <set>

#include "gpu_test_util.h"
#include "kernels/sampling.h"

namespace troupe {
namespace {

using namespace test;

std::vector<int32_t> sample(const std::vector<float>& logits, const std::vector<sampling_row>& rows, int64_t vocab) {
  dev_buf<float> dl(logits);
  dev_buf<sampling_row> dr(rows);
  dev_buf<int32_t> dout(rows.size());
  sample_args a{dl.get(), dr.get(), static_cast<int32_t>(rows.size()), vocab, dout.get()};
  EXPECT_EQ(launch_sample(a, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return dout.download();
}

TEST(apply_penalties, matches_cpu_reference) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(11);
  const int64_t vocab = 1111;
  const int rows = 19;
  std::vector<float> logits(rows * vocab);
  for (auto& l : logits) l = std::uniform_real_distribution<float>(-5, 5)(rng);
  std::vector<int32_t> history;
  std::vector<sampling_row> params(rows);
  for (int r = 0; r < rows; ++r) {
    auto& p = params[r];
    p.repetition_penalty = r % 3 == 0 ? 1.f : 1.3f;
    p.presence_penalty = r % 2 ? 0.5f : 0.f;
    p.frequency_penalty = r % 4 == 1 ? 0.25f : 0.f;
    p.prompt_begin = static_cast<int32_t>(history.size());
    for (int i = 0; i < 30; ++i) history.push_back(static_cast<int32_t>(rng() % vocab));
    p.prompt_end = p.output_begin = static_cast<int32_t>(history.size());
    for (int i = 0; i < 50; ++i) history.push_back(static_cast<int32_t>(rng() % 40));  // repeats
    history.push_back(-1);  // ignored
    p.output_end = static_cast<int32_t>(history.size());
  }
  dev_buf<float> dl(logits);
  dev_buf<sampling_row> dr(params);
  dev_buf<int32_t> dh(history), counts(rows * vocab);
  ASSERT_EQ(launch_apply_penalties({dl.get(), dr.get(), dh.get(), counts.get(), rows, vocab}, nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto got = dl.download();
  for (int r = 0; r < rows; ++r) {
    const auto& p = params[r];
    std::map<int32_t, int> out_count;
    std::set<int32_t> seen;
    for (int i = p.prompt_begin; i < p.prompt_end; ++i) seen.insert(history[i]);
    for (int i = p.output_begin; i < p.output_end; ++i)
      if (history[i] >= 0) ++out_count[history[i]], seen.insert(history[i]);
    for (int64_t t = 0; t < vocab; ++t) {
      float l = logits[r * vocab + t];
      if (seen.count(static_cast<int32_t>(t)) && p.repetition_penalty != 1.f)
        l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
      const auto it = out_count.find(static_cast<int32_t>(t));
      if (it != out_count.end()) l -= p.frequency_penalty * it->second + p.presence_penalty;
      ASSERT_NEAR(got[r * vocab + t], l, 1e-5) << "row " << r << " token " << t;
    }
  }
}

TEST(sample, greedy_is_argmax_with_lowest_id_on_ties) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(12);
  for (int64_t vocab : {7, 1000, 128256}) {
    const int rows = 19;
    std::vector<float> logits(rows * vocab);
    for (auto& l : logits) l = std::uniform_real_distribution<float>(-10, 10)(rng);
    std::vector<int32_t> want(rows);
    for (int r = 0; r < rows; ++r) {
      const int64_t a = rng() % vocab, b = rng() % vocab;
      logits[r * vocab + a] = logits[r * vocab + b] = 50.f;
      want[r] = static_cast<int32_t>(std::min(a, b));
    }
    std::vector<sampling_row> params(rows);
    for (auto& p : params) p.temperature = 0.f;
    for (int r = 0; r < rows; r += 2) params[r].top_k = 1, params[r].temperature = 0.7f;  // top-k 1 is greedy too
    EXPECT_EQ(sample(logits, params, vocab), want) << "vocab " << vocab;
  }
}

TEST(sample, same_seed_and_step_give_the_same_token) {
  TROUPE_REQUIRE_GPU();
  const int64_t vocab = 32000;
  const int rows = 99;
  std::vector<float> logits(rows * vocab);
  std::mt19937 rng(13);
  for (auto& l : logits) l = std::normal_distribution<float>(0, 2)(rng);
  std::vector<sampling_row> params(rows);
  for (int r = 0; r < rows; ++r) params[r].seed = 1234, params[r].step = r, params[r].top_p = 0.9f;
  const auto a = sample(logits, params, vocab), b = sample(logits, params, vocab);
  EXPECT_EQ(a, b);
  std::set<int32_t> distinct(a.begin(), a.end());
  EXPECT_GT(distinct.size(), 5u) << "different steps should draw different tokens";
}

// One logits row repeated over many rows with distinct steps: the draws follow the filtered law.
std::vector<int32_t> draws(const std::vector<float>& row, sampling_row p, int n) {
  const int64_t vocab = static_cast<int64_t>(row.size());
  std::vector<float> logits;
  for (int i = 0; i < n; ++i) logits.insert(logits.end(), row.begin(), row.end());
  std::vector<sampling_row> params(n, p);
  for (int i = 0; i < n; ++i) params[i].step = i;
  return sample(logits, params, vocab);
}

TEST(sample, filters_keep_draws_in_their_sets_and_follow_the_distribution) {
  TROUPE_REQUIRE_GPU();
  // probabilities proportional to 1/2^i over 12 ids, placed at scattered ids of a 5003 vocab.
  const int64_t vocab = 5003;
  std::vector<float> row(vocab, -1e4f);
  std::vector<int32_t> ids;
  for (int i = 0; i < 12; ++i) {
    ids.push_back(static_cast<int32_t>((i * 977 + 13) % vocab));
    row[ids.back()] = -static_cast<float>(i) * std::log(2.f);
  }
  const int n = 4000;
  sampling_row p;
  p.seed = 7;
  {  // plain temperature 1: frequencies within 5 sigma of 2^-(i+1) (normalized)
    const auto d = draws(row, p, n);
    std::map<int32_t, int> c;
    for (int32_t t : d) ++c[t];
    double z = 0;
    for (int i = 0; i < 12; ++i) z += std::pow(0.5, i);
    for (int i = 0; i < 4; ++i) {
      const double pi = std::pow(0.5, i) / z, sd = std::sqrt(n * pi * (1 - pi));
      EXPECT_NEAR(c[ids[i]], n * pi, 5 * sd) << "id rank " << i;
    }
  }
  {  // top-k 3
    sampling_row q = p;
    q.top_k = 3;
    for (int32_t t : draws(row, q, n)) ASSERT_TRUE(t == ids[0] || t == ids[1] || t == ids[2]) << t;
  }
  {  // top-p 0.7: 0.5 + 0.25 reaches it, so the nucleus is the top 2
    sampling_row q = p;
    q.top_p = 0.7f;
    for (int32_t t : draws(row, q, n)) ASSERT_TRUE(t == ids[0] || t == ids[1]) << t;
  }
  {  // min-p 0.2: keeps p >= 0.2 p_max, i.e. ranks 0, 1, 2
    sampling_row q = p;
    q.min_p = 0.2f;
    std::set<int32_t> got;
    for (int32_t t : draws(row, q, n)) got.insert(t);
    EXPECT_EQ(got, (std::set<int32_t>{ids[0], ids[1], ids[2]}));
  }
  {  // low temperature sharpens towards the argmax
    sampling_row q = p;
    q.temperature = 0.1f;
    int top = 0;
    for (int32_t t : draws(row, q, n)) top += t == ids[0];
    EXPECT_GT(top, n * 99 / 100);
  }
}

}  // namespace
}  // namespace troupe
