// The default model (SmolLM2-135M-Instruct, Q4_1 GGUF) against an independent implementation:
// llama.cpp via llama-cpp-python (tools/reference_smollm2_llamacpp.py wrote the expected data).
// llama.cpp quantizes activations to Q8 inside its matmuls, so logits agree to a tolerance and
// greedy paths may part only where llama.cpp's own top-2 margin is a near tie.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config/paths.h"
#include "runtime/cpu_model.h"
#include "runtime/gguf_model.h"
#include "runtime/model_weights.h"

namespace troupe {
namespace {

constexpr float kNearTie = 0.3f;    // logits; a closer top-2 may flip between implementations
constexpr float kLogitTol = 0.6f;  // |ours - llama.cpp| on the top-5 logits, plus 2% of the value

TEST(smollm2_reference, greedy_and_logits_match_llama_cpp) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not installed at " << path << " (run tools/setup.sh)";
  std::ifstream in(std::string(TROUPE_TEST_DATA_DIR) + "/smollm2_llamacpp_greedy.json");
  std::stringstream ss;
  ss << in.rdbuf();
  const auto ref = nlohmann::json::parse(ss.str());

  auto cfg = read_gguf_model_config(path);
  ASSERT_TRUE(cfg.ok()) << cfg.err().message;
  auto src = open_gguf_weights(path);
  ASSERT_TRUE(src.ok()) << src.err().message;
  auto w = load_model_weights(*cfg, **src);
  ASSERT_TRUE(w.ok()) << w.err().message;
  cpu_model_options o;
  o.num_kv_blocks = 64;
  o.block_seq_len = 16;
  o.num_threads = 2;
  auto model = cpu_model::create(*cfg, std::move(*w), o);
  ASSERT_TRUE(model.ok()) << model.err().message;
  const int64_t V = cfg->vocab_size;

  int compared_prompts = 0;
  for (const auto& p : ref["prompts"]) {
    SCOPED_TRACE(p["name"].get<std::string>());
    std::vector<int32_t> tokens = p["prompt_ids"].get<std::vector<int32_t>>();
    const auto expected = p["greedy_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> blocks(64);
    for (int i = 0; i < 64; ++i) blocks[i] = 63 - i;  // any table will do
    int32_t computed = 0;
    int matched = 0;
    for (size_t step = 0; step < expected.size(); ++step) {
      step_batch b;
      seq_step s;
      s.seq_id = 1;
      s.tokens.assign(tokens.begin() + computed, tokens.end());
      s.start_pos = computed;
      s.block_table = blocks;
      b.seqs.push_back(s);
      step_logits out;
      ASSERT_TRUE((*model)->forward(b, out).ok());
      computed = static_cast<int32_t>(tokens.size());
      const float* row = out.row(0);
      const auto& top = p["step_top5"][step];
      const auto ids = top["ids"].get<std::vector<int32_t>>();
      const auto logits = top["logits"].get<std::vector<float>>();
      for (size_t k = 0; k < ids.size(); ++k)
        EXPECT_NEAR(row[ids[k]], logits[k], kLogitTol + 0.02f * std::abs(logits[k])) << "step " << step << " token " << ids[k];
      const int32_t ours = static_cast<int32_t>(std::max_element(row, row + V) - row);
      if (ours != expected[step]) {
        EXPECT_LT(logits[0] - logits[1], kNearTie)
            << "diverged at step " << step << " where llama.cpp's choice was clear (" << expected[step] << " vs "
            << ours << ")";
        break;
      }
      ++matched;
      tokens.push_back(ours);
    }
    EXPECT_GE(matched, 1) << "even the first token differs";
    std::printf("[   INFO   ] %s: %d of %zu greedy tokens identical to llama.cpp\n",
                p["name"].get<std::string>().c_str(), matched, expected.size());
    ++compared_prompts;
  }
  EXPECT_GE(compared_prompts, 4);
}

}  // namespace
}  // namespace troupe
