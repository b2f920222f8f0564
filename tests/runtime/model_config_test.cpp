// Model metadata from config.json: both rope spellings, architectures, defaults and clear errors.
#include <gtest/gtest.h>

#include "runtime/model_config.h"

namespace troupe {
namespace {

TEST(model_config, reads_transformers5_rope_parameters) {
  auto c = read_model_config(std::string(TROUPE_FIXTURES_DIR) + "/tiny-llama");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->architecture, "llama");
  EXPECT_EQ(c->num_layers, 4);
  EXPECT_EQ(c->num_heads, 4);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_DOUBLE_EQ(c->rope.theta, 10000.0);
  EXPECT_EQ(c->rope.type, "default");
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->name, "tiny-llama");
}

TEST(model_config, qwen2_has_qkv_bias_and_tied_embeddings) {
  auto c = read_model_config(std::string(TROUPE_FIXTURES_DIR) + "/tiny-qwen2/config.json");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->architecture, "qwen2");
  EXPECT_TRUE(c->attention_bias);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->head_dim, 16);  // hidden 96 / 6 heads
  EXPECT_DOUBLE_EQ(c->rope.theta, 1000000.0);
}

TEST(model_config, reads_top_level_rope_theta_and_llama3_scaling) {
  auto c = read_model_config(std::string(TROUPE_TEST_DATA_DIR) + "/llama3-8b");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_DOUBLE_EQ(c->rope.theta, 500000.0);
  EXPECT_EQ(c->rope.type, "llama3");
  EXPECT_DOUBLE_EQ(c->rope.factor, 8.0);
  EXPECT_EQ(c->rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c->source_dtype, "bfloat16");
}

TEST(model_config, mistral_is_accepted) {
  auto c = parse_hf_config(R"({"model_type":"mistral","vocab_size":32000,"hidden_size":4096,"intermediate_size":14336,
    "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"rope_theta":1000000.0,
    "max_position_embeddings":32768,"sliding_window":null})", "mistral.json");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->architecture, "mistral");
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->sliding_window, 0);
}

TEST(model_config, errors_name_the_file_and_key) {
  auto missing = parse_hf_config(R"({"model_type":"llama","vocab_size":10})", "/m/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.err().message.find("/m/config.json"), std::string::npos);
  EXPECT_NE(missing.err().message.find("hidden_size"), std::string::npos);
  auto bad_json = parse_hf_config("{nope", "x.json");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_EQ(bad_json.err().code, errc::corrupt_file);
  auto arch = parse_hf_config(R"({"model_type":"gpt_neox"})", "x.json");
  ASSERT_FALSE(arch.ok());
  EXPECT_EQ(arch.err().code, errc::unsupported);
  auto heads = parse_hf_config(R"({"model_type":"llama","vocab_size":10,"hidden_size":64,"intermediate_size":8,
    "num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3})", "x.json");
  ASSERT_FALSE(heads.ok());
  EXPECT_NE(heads.err().message.find("num_key_value_heads"), std::string::npos);
  auto rope = parse_hf_config(R"({"model_type":"llama","vocab_size":10,"hidden_size":64,"intermediate_size":8,
    "num_hidden_layers":1,"num_attention_heads":4,"rope_scaling":{"type":"yarn","factor":4}})", "x.json");
  ASSERT_FALSE(rope.ok());
  EXPECT_EQ(rope.err().code, errc::unsupported);
  EXPECT_EQ(read_model_config("/nonexistent/model").err().code, errc::not_found);
}

TEST(model_config, reads_the_default_gguf_header) {
  const char* home = std::getenv("HOME");
  const std::string path = std::string(home ? home : "") + "/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  auto c = read_model_config(path);
  if (!c.ok() && c.err().code == errc::not_found) GTEST_SKIP() << "default model not installed: " << path;
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->num_layers, 30);
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_TRUE(c->tie_word_embeddings);
}

}  // namespace
}  // namespace troupe
