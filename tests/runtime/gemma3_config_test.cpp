// Gemma 3 configuration: both config.json spellings (transformers 5's layer_types and per-type
// rope_parameters; transformers 4's sliding_window_pattern and rope_local_base_freq, inside a
// multimodal wrapper's text_config), the GGUF header and tensor names of the real 270M file, and
// bad input refused at load with the key or tensor named.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "config/paths.h"
#include "runtime/model_config.h"
#include "runtime/model_weights.h"
#include "runtime/weight_source.h"

namespace troupe {
namespace {

using json = nlohmann::json;

std::string fixture(const char* name) { return std::string(TROUPE_TEST_DATA_DIR) + "/fixtures/" + name; }

json small_gemma3() {
  return json{{"model_type", "gemma3_text"},      {"vocab_size", 512},         {"hidden_size", 128},
              {"intermediate_size", 352},         {"num_hidden_layers", 6},    {"num_attention_heads", 4},
              {"num_key_value_heads", 2},         {"head_dim", 48},            {"max_position_embeddings", 1024},
              {"sliding_window", 8},              {"rope_theta", 1000000.0},   {"rope_local_base_freq", 10000.0},
              {"query_pre_attn_scalar", 40},      {"final_logit_softcapping", nullptr}};
}

TEST(gemma3_config, reads_the_transformers5_fixture) {
  auto c = read_model_config(fixture("tiny-gemma3"));
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->architecture, "gemma3");
  EXPECT_EQ(c->layer_sliding, (std::vector<uint8_t>{1, 1, 0, 1, 1, 0}));
  EXPECT_EQ(c->sliding_window, 8);
  EXPECT_EQ(c->layer_window(0), 8);
  EXPECT_EQ(c->layer_window(2), 0);
  EXPECT_DOUBLE_EQ(c->rope.theta, 1000000.0);
  EXPECT_DOUBLE_EQ(c->rope_local.theta, 10000.0);
  EXPECT_DOUBLE_EQ(c->query_pre_attn_scalar, 40.0);
  EXPECT_DOUBLE_EQ(c->final_logit_softcapping, 30.0);
  EXPECT_FLOAT_EQ(static_cast<float>(c->embed_scale), std::sqrt(128.0f));
  EXPECT_EQ(c->head_dim, 48);  // independent of hidden / heads
  EXPECT_TRUE(c->tie_word_embeddings && c->qk_norm && c->sandwich_norms && c->gelu_tanh_mlp);
  EXPECT_EQ(c->norm_weight_offset, 1.0f);
}

TEST(gemma3_config, reads_the_transformers4_spelling_inside_text_config) {
  json text = small_gemma3();
  text["sliding_window_pattern"] = 3;
  json wrapper{{"model_type", "gemma3"}, {"text_config", text}};
  auto c = parse_hf_config(wrapper.dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->architecture, "gemma3");
  EXPECT_EQ(c->layer_sliding, (std::vector<uint8_t>{1, 1, 0, 1, 1, 0}));
  EXPECT_DOUBLE_EQ(c->rope.theta, 1000000.0);
  EXPECT_DOUBLE_EQ(c->rope_local.theta, 10000.0);
  EXPECT_EQ(c->final_logit_softcapping, 0.0);
}

TEST(gemma3_config, bad_configs_are_refused_with_the_key_named) {
  auto refused = [](json j, const std::string& key) {
    auto c = parse_hf_config(j.dump(), "config.json");
    ASSERT_FALSE(c.ok()) << "accepted a config with bad '" << key << "'";
    EXPECT_NE(c.err().message.find("'" + key + "'"), std::string::npos) << c.err().message;
  };
  json big_window = small_gemma3();
  big_window["sliding_window"] = 4096;  // > max_position_embeddings 1024
  refused(big_window, "sliding_window");
  json no_window = small_gemma3();
  no_window.erase("sliding_window");
  refused(no_window, "sliding_window");
  json short_types = small_gemma3();
  short_types["layer_types"] = {"sliding_attention", "full_attention"};
  refused(short_types, "layer_types");
  json odd_type = small_gemma3();
  odd_type["layer_types"] = json::array();
  for (int i = 0; i < 6; ++i) odd_type["layer_types"].push_back("chunked_attention");
  refused(odd_type, "layer_types");
  json capped_attn = small_gemma3();
  capped_attn["attn_logit_softcapping"] = 50.0;
  refused(capped_attn, "attn_logit_softcapping");
}

TEST(gemma3_config, unknown_architectures_are_refused_with_the_supported_list) {
  json j = small_gemma3();
  j["model_type"] = "gemma2";
  auto c = parse_hf_config(j.dump(), "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.err().message.find("gemma3"), std::string::npos) << c.err().message;
  EXPECT_NE(c.err().message.find("llama"), std::string::npos) << c.err().message;
}

// The fixture's weights with one tensor hidden.
class hiding_source : public weight_source {
 public:
  hiding_source(std::unique_ptr<weight_source> inner, std::string hidden) : inner_(std::move(inner)) {
    for (const auto& t : inner_->tensors())
      if (t.name != hidden) infos_.push_back(t);
  }
  const std::vector<tensor_info>& tensors() const override { return infos_; }
  status read_f32(const std::string& name, std::vector<float>& out) const override { return inner_->read_f32(name, out); }
  std::string origin() const override { return inner_->origin(); }

 private:
  std::unique_ptr<weight_source> inner_;
  std::vector<tensor_info> infos_;
};

TEST(gemma3_config, missing_norms_are_refused_at_load_with_the_tensor_named) {
  auto cfg = read_model_config(fixture("tiny-gemma3"));
  ASSERT_TRUE(cfg.ok()) << cfg.err().message;
  for (const char* name : {"model.layers.0.self_attn.q_norm.weight", "model.layers.3.post_feedforward_layernorm.weight",
                           "model.layers.5.pre_feedforward_layernorm.weight", "model.layers.1.post_attention_layernorm.weight"}) {
    auto src = open_weights(fixture("tiny-gemma3"));
    ASSERT_TRUE(src.ok()) << src.err().message;
    hiding_source hidden(std::move(*src), name);
    auto w = load_model_weights(*cfg, hidden);
    ASSERT_FALSE(w.ok()) << name;
    EXPECT_EQ(w.err().code, errc::not_found);
    EXPECT_NE(w.err().message.find(name), std::string::npos) << w.err().message;
  }
}

TEST(gemma3_config, reads_the_270m_gguf_header_and_tensor_names) {
  const std::string path = (std::filesystem::path(default_model_path()).parent_path() / "gemma-3-270m-q4_k_m.gguf").string();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "Gemma 3 270M not installed at " << path << " (tools/setup.sh --test)";
  auto c = read_model_config(path);
  ASSERT_TRUE(c.ok()) << c.err().message;
  EXPECT_EQ(c->architecture, "gemma3");
  EXPECT_EQ(c->num_layers, 18);
  EXPECT_EQ(c->head_dim, 256);
  EXPECT_EQ(c->num_kv_heads, 1);
  EXPECT_EQ(c->sliding_window, 512);
  ASSERT_EQ(c->layer_sliding.size(), 18u);
  for (int i = 0; i < 18; ++i) EXPECT_EQ(c->layer_sliding[i], (i + 1) % 6 != 0) << "layer " << i;
  EXPECT_DOUBLE_EQ(c->rope.theta, 1000000.0);
  EXPECT_DOUBLE_EQ(c->rope_local.theta, 10000.0);
  EXPECT_DOUBLE_EQ(c->query_pre_attn_scalar, 256.0);
  EXPECT_EQ(c->norm_weight_offset, 0.0f);  // the converter stored 1 + w
  EXPECT_TRUE(c->tie_word_embeddings);
  auto src = open_weights(path);
  ASSERT_TRUE(src.ok()) << src.err().message;
  for (const char* name : {"model.layers.0.pre_feedforward_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
                           "model.layers.17.post_feedforward_layernorm.weight", "model.layers.9.self_attn.k_norm.weight"})
    EXPECT_NE((*src)->find(name), nullptr) << name;
  // The plan's count of what the CPU holds equals what loading holds.
  auto held = held_weight_bytes(*c, **src);
  ASSERT_TRUE(held.ok()) << held.err().message;
  auto w = load_model_weights(*c, **src);
  ASSERT_TRUE(w.ok()) << w.err().message;
  EXPECT_EQ(*held, static_cast<uint64_t>(w->num_bytes()));
}

}  // namespace
}  // namespace troupe
