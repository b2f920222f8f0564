// The CPU model's accuracy on the default model (SmolLM2-135M Q4_1) against the float64 reference
// forward pass over the same dequantized weights (tools/smollm2_float64_reference.py, stored in
// tests/data/smollm2_float64_prompt_logprobs.json): the goals for the server's default, a
// float16 KV cache (mean |Δ log-prob| ≤ 1e-3 nats over the prompts' tokens, greedy token = the
// reference's argmax wherever its top-2 margin exceeds 1e-2), and 1e-4 nats per token with float32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "config/paths.h"
#include "runtime/cpu_model.h"
#include "runtime/gguf_model.h"
#include "runtime/model_weights.h"

namespace troupe {
namespace {

struct prompt_error {
  double sum = 0, max = 0;  // of |Δ log-prob| over the prompt's scored tokens
  int64_t tokens = 0;
  int64_t argmax_checked = 0, argmax_wrong = 0;
};

// One prompt through a fresh sequence in one prefill step: every row's log-softmax, compared with
// the reference's log-prob of the next prompt token and with its argmax.
prompt_error compare(cpu_model& m, const nlohmann::json& ref) {
  const std::vector<int32_t> ids = ref["ids"].get<std::vector<int32_t>>();
  step_batch b;
  seq_step s;
  s.seq_id = 1;
  s.tokens = ids;
  s.want_all_logits = true;
  for (int i = 0; i < 8; ++i) s.block_table.push_back(i);
  b.seqs.push_back(s);
  step_logits out;
  EXPECT_TRUE(m.forward(b, out).ok());
  prompt_error e;
  const int64_t vocab = out.vocab_size;
  for (size_t p = 0; p < ids.size(); ++p) {
    const float* row = out.data.data() + p * vocab;
    double mx = row[0], sum = 0;
    for (int64_t i = 0; i < vocab; ++i) mx = std::max<double>(mx, row[i]);
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - mx);
    if (p + 1 < ids.size()) {
      const double lp = row[ids[p + 1]] - mx - std::log(sum);
      const double d = std::abs(lp - ref["logprobs"][p + 1].get<double>());
      e.sum += d, e.max = std::max(e.max, d), ++e.tokens;
    }
    if (ref["margin"][p].get<double>() > 1e-2) {
      ++e.argmax_checked;
      if (std::max_element(row, row + vocab) - row != ref["argmax"][p].get<int64_t>()) ++e.argmax_wrong;
    }
  }
  return e;
}

class cpu_reference_accuracy : public ::testing::TestWithParam<weight_dtype> {};

TEST_P(cpu_reference_accuracy, default_model_meets_the_goals_against_the_float64_reference) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not installed at " << path;
  std::ifstream f(std::string(TROUPE_TEST_DATA_DIR) + "/smollm2_float64_prompt_logprobs.json");
  ASSERT_TRUE(f.good());
  const nlohmann::json ref = nlohmann::json::parse(f);
  auto cfg = read_gguf_model_config(path);
  ASSERT_TRUE(cfg.ok());
  auto src = open_gguf_weights(path);
  ASSERT_TRUE(src.ok());
  auto w = load_model_weights(*cfg, **src, {});
  ASSERT_TRUE(w.ok()) << w.err().message;
  cpu_model_options o{8, 16, 2};
  o.kv_dtype = GetParam();
  auto m = cpu_model::create(*cfg, std::move(*w), o);
  ASSERT_TRUE(m.ok()) << m.err().message;
  prompt_error all;
  for (const auto& p : ref["prompts"]) {
    const prompt_error e = compare(**m, p);
    std::printf("  KV %s, %2ld tokens: mean |dlogprob| %.2e, max %.2e, argmax %ld/%ld\n",
                weight_dtype_name(GetParam()), static_cast<long>(e.tokens), e.sum / e.tokens, e.max,
                static_cast<long>(e.argmax_checked - e.argmax_wrong), static_cast<long>(e.argmax_checked));
    EXPECT_LE(e.sum / e.tokens, 1e-3) << p["text"];  // each prompt's mean too (measured ≤ 5e-4 with f16)
    all.sum += e.sum, all.max = std::max(all.max, e.max), all.tokens += e.tokens;
    all.argmax_checked += e.argmax_checked, all.argmax_wrong += e.argmax_wrong;
  }
  ASSERT_GT(all.tokens, 50);
  ASSERT_GT(all.argmax_checked, 50);
  EXPECT_EQ(all.argmax_wrong, 0);
  EXPECT_LE(all.sum / all.tokens, 1e-3);
  if (GetParam() == weight_dtype::f32) EXPECT_LE(all.max, 1e-4);  // float32 KV: every token within 1e-4
}

INSTANTIATE_TEST_SUITE_P(kv_dtypes, cpu_reference_accuracy, ::testing::Values(weight_dtype::f16, weight_dtype::f32),
                         [](const auto& info) { return std::string(weight_dtype_name(info.param)); });

}  // namespace
}  // namespace troupe
