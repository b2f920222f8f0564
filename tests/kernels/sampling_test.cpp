// GPU sampling (kernels/sampling.cu) against the CPU sampler on the same logits: greedy and seeded
// draws token for token, logprobs, penalties evolving over steps; seeded runs reproducible and
// independent of the batch; odd shapes (batch 1, 19, 99; vocab 7 to 262144).
#include <cmath>
#include <random>

#include "gpu_test_util.h"
#include "kernels/sampling.h"
#include "runtime/sampler.h"
#include "runtime/sampling_rows.h"

namespace troupe {
namespace {

using namespace test;

sampling_params random_params(std::mt19937_64& rng, int64_t vocab, bool greedy) {
  auto pick = [&](std::initializer_list<float> v) { return *(v.begin() + rng() % v.size()); };
  sampling_params p;
  p.temperature = greedy ? 0.0f : pick({0.3f, 0.8f, 1.0f, 1.4f});
  p.top_k = static_cast<int32_t>(pick({-1, 1, 5, 50, 2000}));
  p.top_p = pick({1.0f, 0.95f, 0.6f});
  p.min_p = pick({0.0f, 0.05f});
  p.repetition_penalty = pick({1.0f, 1.2f});
  p.presence_penalty = pick({0.0f, 0.5f});
  p.frequency_penalty = pick({0.0f, 0.3f});
  p.seed = rng();
  p.logprobs = static_cast<int32_t>(pick({-1, 0, 5}));
  p.lp_mode = rng() % 2 ? logprobs_mode::raw : logprobs_mode::processed;
  p.max_tokens = 32;
  p.min_tokens = static_cast<int32_t>(pick({0, 2}));
  p.logit_bias = {{static_cast<int32_t>(rng() % vocab), pick({-100.0f, 5.0f})}};
  return p;
}

// One device step for `rows` samplers over `logits` [rows, vocab]: returns the answers.
std::vector<sampled_seq> device_step(std::vector<sampler>& s, const std::vector<float>& logits, int64_t vocab) {
  const auto n = static_cast<int32_t>(s.size());
  std::vector<smath::row_edit> edits(static_cast<size_t>(n) * 4096);
  std::vector<int32_t> edit_of(static_cast<size_t>(vocab), -1);
  sampling_rows_out out{edits.data(), static_cast<int32_t>(edits.size()), 0, edit_of};
  std::vector<smath::row_params> params(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) EXPECT_TRUE(build_sampling_row(s[i], vocab, out, params[i]));
  edits.resize(static_cast<size_t>(std::max(out.used, 1)));
  dev_buf<float> dl(logits);
  dev_buf<smath::row_params> dp(params);
  dev_buf<smath::row_edit> de(edits);
  dev_buf<smath::row_result> dr(static_cast<size_t>(n));
  EXPECT_EQ(launch_sample_rows({dl.get(), nullptr, dp.get(), de.get(), dr.get(), n, vocab}, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<smath::row_result> res = dr.download();
  std::vector<sampled_seq> answers;
  for (int32_t i = 0; i < n; ++i) answers.push_back(finish_sampling_row(s[i], res[i], i));
  return answers;
}

std::vector<float> random_logits(std::mt19937_64& rng, size_t n) {
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void expect_same_as_cpu(bool greedy) {
  std::mt19937_64 rng(greedy ? 1 : 2);
  for (int64_t vocab : {int64_t{7}, int64_t{1111}, int64_t{49152}, int64_t{262144}}) {
    for (int32_t batch : {1, 19, 99}) {
      if (vocab == 262144 && batch == 99) continue;  // memory for the host references
      std::vector<sampler> cpu, gpu;
      std::vector<int32_t> prompt(20);
      for (int32_t i = 0; i < batch; ++i) {
        for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % vocab);
        const sampling_params p = random_params(rng, vocab, greedy);
        const std::vector<int32_t> eos = {static_cast<int32_t>(rng() % vocab)};
        cpu.emplace_back(p, prompt, eos);
        gpu.emplace_back(p, prompt, eos);
      }
      for (int step = 0; step < 3; ++step) {
        const std::vector<float> logits = random_logits(rng, static_cast<size_t>(batch * vocab));
        const std::vector<sampled_seq> got = device_step(gpu, logits, vocab);
        for (int32_t i = 0; i < batch; ++i) {
          std::vector<float> row(logits.begin() + i * vocab, logits.begin() + (i + 1) * vocab);
          const sampled_token want = cpu[static_cast<size_t>(i)].sample(row);
          SCOPED_TRACE(testing::Message() << "vocab " << vocab << " batch " << batch << " row " << i << " step " << step);
          ASSERT_EQ(got[static_cast<size_t>(i)].token.token, want.token);
          if (std::isinf(want.logprob)) continue;
          EXPECT_NEAR(got[static_cast<size_t>(i)].token.logprob, want.logprob, 1e-4);
          ASSERT_EQ(got[static_cast<size_t>(i)].token.top.size(), want.top.size());
          for (size_t j = 0; j < want.top.size(); ++j) EXPECT_EQ(got[static_cast<size_t>(i)].token.top[j].token, want.top[j].token);
        }
      }
    }
  }
}

TEST(sample_rows, greedy_matches_the_cpu_sampler) {
  TROUPE_REQUIRE_GPU();
  expect_same_as_cpu(true);
}

TEST(sample_rows, seeded_draws_match_the_cpu_sampler_given_its_uniforms) {
  TROUPE_REQUIRE_GPU();
  expect_same_as_cpu(false);
}

TEST(sample_rows, seeded_runs_repeat_and_do_not_depend_on_the_batch) {
  TROUPE_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  const int64_t vocab = 32000;
  const int32_t batch = 19;
  std::vector<sampling_params> params;
  for (int32_t i = 0; i < batch; ++i) params.push_back(random_params(rng, vocab, false));
  const std::vector<float> logits = random_logits(rng, static_cast<size_t>(batch * vocab));
  auto run = [&] {
    std::vector<sampler> s;
    for (const auto& p : params) s.emplace_back(p, std::span<const int32_t>());
    std::vector<int32_t> tokens;
    for (int step = 0; step < 4; ++step)
      for (const sampled_seq& a : device_step(s, logits, vocab)) tokens.push_back(a.token.token);
    return tokens;
  };
  const std::vector<int32_t> first = run();
  EXPECT_EQ(run(), first);
  // Row 7 alone, with the same history of rows: the same tokens as inside the batch.
  std::vector<sampler> alone;
  alone.emplace_back(params[7], std::span<const int32_t>());
  const std::vector<float> row(logits.begin() + 7 * vocab, logits.begin() + 8 * vocab);
  for (int step = 0; step < 4; ++step)
    EXPECT_EQ(device_step(alone, row, vocab)[0].token.token, first[static_cast<size_t>(step * batch + 7)]) << step;
}

TEST(sample_rows, skipped_rows_and_bad_sizes) {
  TROUPE_REQUIRE_GPU();
  std::vector<smath::row_params> params(2);
  params[0].skip = 1;
  params[1].temperature = 0.0f;
  const std::vector<float> logits = {0.f, 1.f, 2.f, 5.f, 4.f, 3.f};
  dev_buf<float> dl(logits);
  dev_buf<smath::row_params> dp(params);
  dev_buf<smath::row_result> dr(2);
  std::vector<smath::row_result> init(2);
  init[0].token = -7;
  dr.upload(init);
  ASSERT_EQ(launch_sample_rows({dl.get(), nullptr, dp.get(), nullptr, dr.get(), 2, 3}, nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto res = dr.download();
  EXPECT_EQ(res[0].token, -7) << "a skipped row is the host's";
  EXPECT_EQ(res[1].token, 0);
  EXPECT_EQ(launch_sample_rows({dl.get(), nullptr, dp.get(), nullptr, dr.get(), 2, 0}, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace troupe
