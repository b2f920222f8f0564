// The second real model, Gemma 3 270M (Q4_K_M GGUF, installed by tools/setup.sh --test), against a
// float64 reference forward pass over its dequantized weights (tools/gemma3_reference.py wrote
// tests/data/gemma3_270m_reference.json): per-token log-probs of six prompts (one longer than the
// 512-token window of the local layers) and of their 16-token greedy continuations within 1e-3
// nats, the same greedy tokens, and troupe's tokenizer giving the reference's prompt ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config/paths.h"
#include "runtime/cpu_model.h"
#include "runtime/gguf_model.h"
#include "runtime/model_weights.h"
#include "runtime/tokenizer.h"

namespace troupe {
namespace {

constexpr double kLogprobTol = 1e-3;  // nats
constexpr double kNearTie = 2 * kLogprobTol;  // a reference top-2 margin closer than this may flip
constexpr int64_t kBlockLen = 16, kBlocks = 128;

std::string gemma_path() {
  return (std::filesystem::path(default_model_path()).parent_path() / "gemma-3-270m-q4_k_m.gguf").string();
}

nlohmann::json load_reference() {
  std::ifstream in(std::string(TROUPE_TEST_DATA_DIR) + "/gemma3_270m_reference.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// log-softmax of row[0, n) in double.
std::vector<double> log_softmax(const float* row, int64_t n) {
  const double mx = *std::max_element(row, row + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(row[i] - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[i] = row[i] - lse;
  return out;
}

TEST(gemma3_270m_reference, logprobs_and_greedy_continuations_match_float64_reference) {
  const std::string path = gemma_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "Gemma 3 270M not installed at " << path << " (tools/setup.sh --test)";
  const auto ref = load_reference();
  auto cfg = read_gguf_model_config(path);
  ASSERT_TRUE(cfg.ok()) << cfg.err().message;
  EXPECT_EQ(cfg->architecture, "gemma3");
  auto data = read_gguf_tokenizer_data(path);
  ASSERT_TRUE(data.ok()) << data.err().message;
  auto tok = tokenizer::from_data(std::move(*data));
  ASSERT_TRUE(tok.ok()) << tok.err().message;
  auto src = open_gguf_weights(path);
  ASSERT_TRUE(src.ok()) << src.err().message;
  auto w = load_model_weights(*cfg, **src);
  ASSERT_TRUE(w.ok()) << w.err().message;
  cpu_model_options o;
  o.num_kv_blocks = kBlocks;
  o.block_seq_len = kBlockLen;
  o.num_threads = 2;
  auto model = cpu_model::create(*cfg, std::move(*w), o);
  ASSERT_TRUE(model.ok()) << model.err().message;
  const int64_t V = cfg->vocab_size;

  int prompts = 0, strict_tokens = 0;
  for (const auto& p : ref["prompts"]) {
    const std::string text = p["text"].get<std::string>();
    SCOPED_TRACE(text.substr(0, 40));
    const auto ids = p["prompt_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->encode(text), ids) << "troupe's tokenizer differs from transformers' on this prompt";
    ASSERT_LE(static_cast<int64_t>(ids.size()) + 16, kBlocks * kBlockLen);
    std::vector<int32_t> table(kBlocks);
    for (int i = 0; i < kBlocks; ++i) table[i] = (i * 37) % kBlocks;  // scattered blocks

    step_batch b;
    seq_step s;
    s.seq_id = 1;
    s.tokens = ids;
    s.start_pos = 0;
    s.block_table = table;
    s.want_all_logits = true;
    b.seqs.push_back(s);
    step_logits out;
    ASSERT_TRUE((*model)->forward(b, out).ok());
    const auto want_lp = p["prompt_logprobs"].get<std::vector<double>>();
    double worst = 0;
    for (size_t t = 1; t < ids.size(); ++t) {
      const auto lp = log_softmax(out.row(static_cast<int64_t>(t - 1)), V);
      worst = std::max(worst, std::abs(lp[ids[t]] - want_lp[t - 1]));
    }
    EXPECT_LT(worst, kLogprobTol) << "prompt log-probs";

    // The continuation is fed the reference's tokens (teacher forcing), so one near-tie cannot
    // derail the rest: each step's argmax must be the reference's, except where the reference's
    // own top-2 margin is under kNearTie, where float32 and float64 may legitimately differ.
    const auto greedy = p["greedy_ids"].get<std::vector<int32_t>>();
    const auto greedy_lp = p["greedy_logprobs"].get<std::vector<double>>();
    const auto margins = p["greedy_margins"].get<std::vector<double>>();
    std::vector<double> last = log_softmax(out.row(static_cast<int64_t>(ids.size()) - 1), V);
    int32_t pos = static_cast<int32_t>(ids.size());
    for (size_t k = 0; k < greedy.size(); ++k) {
      const int32_t ours = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
      if (margins[k] >= kNearTie) {
        EXPECT_EQ(ours, greedy[k]) << "greedy token " << k;
        if (ours == greedy[k]) ++strict_tokens;
      } else {
        EXPECT_LT(last[ours] - last[greedy[k]], kNearTie) << "greedy token " << k << " (a near tie)";
      }
      EXPECT_NEAR(last[greedy[k]], greedy_lp[k], kLogprobTol) << "greedy token " << k;
      step_batch d;
      seq_step ds;
      ds.seq_id = 1;
      ds.tokens = {greedy[k]};
      ds.start_pos = pos++;
      ds.block_table = table;
      d.seqs.push_back(ds);
      ASSERT_TRUE((*model)->forward(d, out).ok());
      last = log_softmax(out.row(0), V);
    }
    ++prompts;
  }
  EXPECT_GE(prompts, 5);
  EXPECT_GE(strict_tokens, 5 * 15) << "too few greedy tokens compared strictly";
}

// The long prompt (1092 tokens) exercises the local layers' 512-token window: the same model with
// every layer global misses the reference by far more than the tolerance.
TEST(gemma3_270m_reference, the_long_prompt_needs_the_sliding_window) {
  const std::string path = gemma_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "Gemma 3 270M not installed at " << path << " (tools/setup.sh --test)";
  const auto ref = load_reference();
  const auto& p = ref["prompts"].back();
  const auto ids = p["prompt_ids"].get<std::vector<int32_t>>();
  ASSERT_GT(ids.size(), 600u);
  auto cfg = read_gguf_model_config(path);
  ASSERT_TRUE(cfg.ok()) << cfg.err().message;
  auto src = open_gguf_weights(path);
  ASSERT_TRUE(src.ok()) << src.err().message;
  auto w = load_model_weights(*cfg, **src);
  ASSERT_TRUE(w.ok()) << w.err().message;
  model_config global = *cfg;
  std::fill(global.layer_sliding.begin(), global.layer_sliding.end(), 0);  // keeps the local rope off too
  global.rope_local = global.rope;
  cpu_model_options o;
  o.num_kv_blocks = kBlocks;
  o.block_seq_len = kBlockLen;
  o.num_threads = 2;
  auto model = cpu_model::create(global, std::move(*w), o);
  ASSERT_TRUE(model.ok()) << model.err().message;
  step_batch b;
  seq_step s;
  s.seq_id = 1;
  s.tokens = ids;
  s.block_table.resize(kBlocks);
  for (int i = 0; i < kBlocks; ++i) s.block_table[i] = i;
  s.want_all_logits = true;
  b.seqs.push_back(s);
  step_logits out;
  ASSERT_TRUE((*model)->forward(b, out).ok());
  const auto want_lp = p["prompt_logprobs"].get<std::vector<double>>();
  double worst = 0;
  for (size_t t = 600; t < ids.size(); ++t) {
    const auto lp = log_softmax(out.row(static_cast<int64_t>(t - 1)), cfg->vocab_size);
    worst = std::max(worst, std::abs(lp[ids[t]] - want_lp[t - 1]));
  }
  EXPECT_GT(worst, 100 * kLogprobTol) << "the reference does not depend on the window";
}

}  // namespace
}  // namespace troupe
