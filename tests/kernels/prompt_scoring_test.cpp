// The prompt scoring kernel vs its CPU twin (runtime/prompt_logprobs.h: score_row) over odd shapes,
// ties included: the target's logprob and the top k, best first with ties to the lower id.
#include <cmath>
#include <random>

#include "gpu_test_util.h"
#include "kernels/prompt_scoring.h"
#include "runtime/prompt_logprobs.h"

namespace troupe {
namespace {

TEST(prompt_scoring, matches_the_cpu_reduction_over_odd_shapes) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-8.f, 8.f);
  for (int32_t rows : {1, 19, 99})
    for (int64_t vocab : {111, 4096, 49152})
      for (int32_t k : {0, 1, 5, 20}) {
        std::vector<float> logits(static_cast<size_t>(rows * vocab));
        for (float& v : logits) v = std::round(u(rng) * 4.f) / 4.f;  // coarse values: many ties
        std::vector<int32_t> targets(static_cast<size_t>(rows));
        for (int32_t& t : targets) t = static_cast<int32_t>(rng() % vocab);
        test::dev_buf<float> dl(logits), dlp(rows), dtop(static_cast<size_t>(rows) * k);
        test::dev_buf<int32_t> dt(targets), dids(static_cast<size_t>(rows) * k);
        score_rows_args a;
        a.logits = dl.get(), a.targets = dt.get(), a.num_rows = rows, a.vocab = vocab, a.k = k;
        a.target_logprob = dlp.get(), a.top_ids = dids.get(), a.top_logprobs = dtop.get();
        ASSERT_EQ(launch_score_rows(a, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const auto lp = dlp.download();
        const auto ids = dids.download();
        const auto tops = dtop.download();
        for (int32_t r = 0; r < rows; ++r) {
          const std::span<const float> row(logits.data() + r * vocab, static_cast<size_t>(vocab));
          const token_logprobs want = score_row(row, targets[r], k);
          EXPECT_NEAR(lp[r], want.logprob, 1e-4f) << "row " << r << " vocab " << vocab;
          for (int32_t j = 0; j < k; ++j) {
            EXPECT_EQ(ids[size_t(r) * k + j], want.top[j].token) << "row " << r << " rank " << j;
            EXPECT_NEAR(tops[size_t(r) * k + j], want.top[j].logprob, 1e-4f);
          }
        }
      }
}

}  // namespace
}  // namespace troupe
