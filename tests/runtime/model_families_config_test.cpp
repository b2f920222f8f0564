// Config and load-time checks of the newer families: what Qwen3, Phi-3 (LongRoPE) and Llama 3 GGUF
// (rope_freqs) configs carry, and the refusals of inconsistent configs and unknown architectures,
// each naming the key or tensor at fault.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/gguf_model.h"
#include "runtime/model_config.h"
#include "runtime/model_weights.h"
#include "runtime/weight_source.h"

namespace troupe {
namespace {

std::string fixture(const std::string& name) { return std::string(TROUPE_TEST_DATA_DIR) + "/fixtures/" + name; }

TEST(model_families_config, qwen3_has_qk_norm_and_a_head_dim_of_its_own) {
  for (const std::string path : {fixture("tiny-qwen3"), fixture("tiny-qwen3-bf16/model.gguf")}) {
    auto c = read_model_config(path);
    ASSERT_TRUE(c.ok()) << c.err().message;
    EXPECT_EQ(c->architecture, "qwen3") << path;
    EXPECT_TRUE(c->qk_norm) << path;
    EXPECT_FALSE(c->attention_bias) << path;
    EXPECT_EQ(c->head_dim, 32) << path;
    EXPECT_EQ(c->q_size(), 128) << path;  // != hidden_size 64
    EXPECT_TRUE(c->tie_word_embeddings) << path;
  }
}

TEST(model_families_config, phi3_longrope_uses_the_long_factors_beyond_the_original_context) {
  auto lng = read_model_config(fixture("tiny-phi3"));
  ASSERT_TRUE(lng.ok()) << lng.err().message;
  EXPECT_EQ(lng->architecture, "phi3");
  EXPECT_EQ(lng->rope.type, "longrope");
  EXPECT_EQ(lng->rope.original_max_position_embeddings, 16);
  EXPECT_EQ(lng->rope.freq_factors, lng->rope.long_factor);
  EXPECT_NEAR(lng->rope.attention_factor, std::sqrt(2.0), 1e-12);  // sqrt(1 + ln 16 / ln 16)
  EXPECT_EQ(lng->sliding_window, 48);
  auto gguf = read_model_config(fixture("tiny-phi3-bf16/model.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.err().message;
  EXPECT_EQ(gguf->rope.freq_factors, lng->rope.long_factor);
  EXPECT_NEAR(gguf->rope.attention_factor, std::sqrt(2.0), 1e-6);
  EXPECT_EQ(gguf->sliding_window, 48);
  auto shrt = read_model_config(fixture("tiny-phi3-short"));
  ASSERT_TRUE(shrt.ok()) << shrt.err().message;
  EXPECT_EQ(shrt->rope.freq_factors, shrt->rope.short_factor);
  EXPECT_DOUBLE_EQ(shrt->rope.attention_factor, 1.0);
  EXPECT_EQ(shrt->sliding_window, 0);
}

TEST(model_families_config, su_is_longrope_and_factor_lists_must_fit_head_dim) {
  const std::string base = R"({"model_type":"phi3","vocab_size":10,"hidden_size":64,"intermediate_size":8,
    "num_hidden_layers":1,"num_attention_heads":4,"max_position_embeddings":4096,"original_max_position_embeddings":1024,)";
  auto su = parse_hf_config(base + R"("rope_scaling":{"type":"su","long_factor":[1,2,3,4,5,6,7,8],
    "short_factor":[1,1,1,1,1,1,1,1]}})", "phi.json");
  ASSERT_TRUE(su.ok()) << su.err().message;
  EXPECT_EQ(su->rope.type, "longrope");
  EXPECT_EQ(su->rope.freq_factors.size(), 8u);
  EXPECT_FLOAT_EQ(su->rope.freq_factors[7], 8.0f);
  auto short_list = parse_hf_config(base + R"("rope_scaling":{"type":"longrope","long_factor":[1,2,3],
    "short_factor":[1,1,1,1,1,1,1,1]}})", "phi.json");
  ASSERT_FALSE(short_list.ok());
  EXPECT_NE(short_list.err().message.find("long_factor"), std::string::npos) << short_list.err().message;
  auto partial = parse_hf_config(base + R"("partial_rotary_factor":0.75})", "phi.json");
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.err().message.find("partial_rotary_factor"), std::string::npos);
}

TEST(model_families_config, llama3_gguf_carries_rope_freqs_as_frequency_divisors) {
  auto c = read_model_config(fixture("tiny-llama3-bf16/model.gguf"));
  ASSERT_TRUE(c.ok()) << c.err().message;
  ASSERT_EQ(c->rope.freq_factors.size(), static_cast<size_t>(c->head_dim / 2));
  EXPECT_FLOAT_EQ(c->rope.freq_factors.front(), 1.0f);  // short wavelengths kept
  EXPECT_FLOAT_EQ(c->rope.freq_factors.back(), 8.0f);   // long ones divided by the factor
  // The HF folder's llama3 rope and the GGUF's divisors give the same frequencies.
  auto hf = read_model_config(fixture("tiny-llama3-bf16"));
  ASSERT_TRUE(hf.ok());
  EXPECT_EQ(hf->rope.type, "llama3");
}

TEST(model_families_config, unknown_architecture_is_refused_with_the_supported_list) {
  auto c = parse_hf_config(R"({"model_type":"gpt_neox","vocab_size":10})", "x.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.err().code, errc::unsupported);
  for (const auto& a : supported_architectures())
    EXPECT_NE(c.err().message.find(a), std::string::npos) << a << " missing from: " << c.err().message;
  EXPECT_NE(c.err().message.find("qwen3"), std::string::npos);
  EXPECT_NE(c.err().message.find("phi3"), std::string::npos);
}

TEST(model_families_config, hidden_not_divisible_by_heads_without_head_dim_names_the_keys) {
  auto c = parse_hf_config(R"({"model_type":"llama","vocab_size":10,"hidden_size":100,"intermediate_size":8,
    "num_hidden_layers":1,"num_attention_heads":8})", "x.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.err().message.find("hidden_size"), std::string::npos) << c.err().message;
  EXPECT_NE(c.err().message.find("num_attention_heads"), std::string::npos);
  EXPECT_NE(c.err().message.find("head_dim"), std::string::npos);
}

// A source that hides some tensors of another (a checkpoint missing them).
class hiding_source final : public weight_source {
 public:
  hiding_source(const weight_source& inner, std::vector<std::string> hidden) : inner_(inner) {
    for (const auto& t : inner.tensors())
      if (std::find(hidden.begin(), hidden.end(), t.name) == hidden.end()) infos_.push_back(t);
  }
  const std::vector<tensor_info>& tensors() const override { return infos_; }
  status read_f32(const std::string& name, std::vector<float>& out) const override {
    if (!find(name)) return make_error(errc::not_found, "hidden");
    return inner_.read_f32(name, out);
  }
  std::string origin() const override { return inner_.origin(); }

 private:
  const weight_source& inner_;
  std::vector<tensor_info> infos_;
};

TEST(model_families_config, head_dim_times_heads_unlike_q_proj_is_refused_naming_the_keys) {
  auto cfg = read_model_config(fixture("tiny-qwen3"));
  ASSERT_TRUE(cfg.ok());
  auto src = open_weights(fixture("tiny-qwen3"));
  ASSERT_TRUE(src.ok());
  model_config bad = *cfg;
  bad.head_dim = 16;  // 4 heads x 16 = 64 rows, the checkpoint's q_proj has 128
  auto w = load_model_weights(bad, **src);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.err().code, errc::corrupt_file);
  EXPECT_NE(w.err().message.find("q_proj"), std::string::npos) << w.err().message;
  EXPECT_NE(w.err().message.find("num_attention_heads"), std::string::npos) << w.err().message;
  EXPECT_NE(w.err().message.find("head_dim"), std::string::npos) << w.err().message;
}

TEST(model_families_config, phi3_fused_qkv_of_the_wrong_size_is_refused_naming_the_keys) {
  auto cfg = read_model_config(fixture("tiny-phi3"));
  ASSERT_TRUE(cfg.ok());
  auto src = open_weights(fixture("tiny-phi3"));
  ASSERT_TRUE(src.ok());
  model_config bad = *cfg;
  bad.num_kv_heads = 4;  // qkv_proj would need 4x16 + 2x4x16 = 192 rows; it has 128
  auto w = load_model_weights(bad, **src);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.err().message.find("qkv_proj"), std::string::npos) << w.err().message;
  EXPECT_NE(w.err().message.find("num_key_value_heads"), std::string::npos) << w.err().message;
  bad = *cfg;
  bad.intermediate_size = 100;
  w = load_model_weights(bad, **src);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.err().message.find("gate_up_proj"), std::string::npos) << w.err().message;
  EXPECT_NE(w.err().message.find("intermediate_size"), std::string::npos) << w.err().message;
}

TEST(model_families_config, missing_norms_are_refused_naming_the_tensor) {
  auto cfg = read_model_config(fixture("tiny-qwen3"));
  ASSERT_TRUE(cfg.ok());
  auto src = open_weights(fixture("tiny-qwen3"));
  ASSERT_TRUE(src.ok());
  for (const std::string missing : {"model.layers.1.self_attn.k_norm.weight", "model.layers.0.input_layernorm.weight",
                                    "model.norm.weight"}) {
    hiding_source h(**src, {missing});
    auto w = load_model_weights(*cfg, h);
    ASSERT_FALSE(w.ok()) << missing;
    EXPECT_EQ(w.err().code, errc::not_found);
    EXPECT_NE(w.err().message.find(missing), std::string::npos) << w.err().message;
  }
}

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

TEST(model_families_config, a_gguf_without_tokenizer_keys_has_no_tokenizer_rather_than_a_broken_one) {
  auto t = read_gguf_tokenizer_data(fixture("tiny-qwen3-bf16/model.gguf"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.err().code, errc::not_found) << t.err().message;  // the loader then serves token ids only
}

}  // namespace
}  // namespace troupe
