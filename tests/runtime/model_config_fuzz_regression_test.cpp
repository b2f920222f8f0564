// Regression from tools/fuzz.sh (hf_config target, tests/fuzz/regressions/hf_config/):
// parse_hf_config reads integer keys with json::value<int64_t>, which converts a float such as 1e40
// to int64_t: undefined behaviour (UBSan: "outside the range of representable values of type
// 'long'", runtime/model_config.cpp read_rope), and on x86 a garbage value that is accepted.
// Expected (and now the behaviour): an error naming the key.
#include <string>

#include <gtest/gtest.h>

#include "runtime/model_config.h"

namespace troupe {
namespace {

std::string llama_config(const std::string& max_pos, const std::string& original_max_pos) {
  return R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":256,"hidden_size":64,)"
         R"("intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,)"
         R"("max_position_embeddings":)" + max_pos + R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0,)"
         R"("original_max_position_embeddings":)" + original_max_pos + "}}";
}

TEST(model_config_fuzz_regression, integer_keys_holding_huge_floats_are_errors) {
  ASSERT_TRUE(parse_hf_config(llama_config("2048", "8192"), "config.json").ok());
  auto rope = parse_hf_config(llama_config("2048", "1e40"), "config.json");
  ASSERT_FALSE(rope.ok()) << "original_max_position_embeddings = "
                          << rope.value().rope.original_max_position_embeddings;
  EXPECT_NE(rope.err().message.find("original_max_position_embeddings"), std::string::npos);
  auto max_pos = parse_hf_config(llama_config("1e40", "8192"), "config.json");
  ASSERT_FALSE(max_pos.ok()) << "max_position_embeddings = " << max_pos.value().max_position_embeddings;
  EXPECT_NE(max_pos.err().message.find("max_position_embeddings"), std::string::npos);
  EXPECT_TRUE(parse_hf_config(llama_config("4096.0", "8192"), "config.json").ok());  // integral floats are fine
}

}  // namespace
}  // namespace troupe
