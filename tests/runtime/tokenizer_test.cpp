// Tokenizer tests: small hand-made vocabularies for each rule (merges by rank, SentencePiece scores
// and byte fallback, special tokens, BOS/EOS, arbitrary bytes) and the real SmolLM2 vocabulary
// (GGUF and HF tokenizer.json) against ids computed by Hugging Face tokenizers.
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/bpe.h"
#include "runtime/gguf_model.h"
#include "runtime/hf_tokenizer.h"
#include "runtime/tokenizer.h"

namespace troupe {
namespace {

using ids = std::vector<int32_t>;

// A byte-level vocabulary: the 256 byte characters, then merges "h e", "l l", "he ll", "hell o",
// "Ġ w", and <|end|> (control) and <tool> (user-defined).
tokenizer_data tiny_byte_level() {
  tokenizer_data d;
  d.model = "gpt2";
  d.pre = "gpt2";
  for (int b = 0; b < 256; ++b) d.tokens.push_back(byte_to_unicode(static_cast<uint8_t>(b)));
  for (const char* t : {"he", "ll", "hell", "hello", "Ġw"}) d.tokens.push_back(t);
  d.merges = {"h e", "l l", "he ll", "hell o", "Ġ w"};
  d.tokens.push_back("<|end|>");
  d.tokens.push_back("<tool>");
  d.types.assign(d.tokens.size(), token_type::normal);
  d.types[261] = token_type::control;
  d.types[262] = token_type::user_defined;
  d.eos_id = 261;
  return d;
}

tokenizer make(tokenizer_data d) {
  auto t = tokenizer::from_data(std::move(d));
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.err().to_string());
  return std::move(t).value();
}

TEST(tokenizer, byte_level_mapping_round_trips_every_byte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(byte_level_decode(byte_level_encode(all)), all);
  EXPECT_EQ(byte_to_unicode(' '), "\xC4\xA0");  // Ġ
  EXPECT_EQ(byte_to_unicode('\n'), "\xC4\x8A");  // Ċ
}

TEST(tokenizer, merges_apply_by_rank) {
  tokenizer t = make(tiny_byte_level());
  EXPECT_EQ(t.encode("hello", false), (ids{259}));
  EXPECT_EQ(t.encode("hello wow", false), (ids{259, 260, 'o', 'w'}));
  EXPECT_EQ(t.decode(t.encode("hello wow", false)), "hello wow");
}

TEST(tokenizer, control_tokens_are_matched_only_when_parse_special) {
  tokenizer t = make(tiny_byte_level());
  EXPECT_EQ(t.encode("hello<|end|>", false, true), (ids{259, 261}));
  ids plain = t.encode("hello<|end|>", false, false);
  EXPECT_GT(plain.size(), 2u);
  EXPECT_EQ(t.decode(plain), "hello<|end|>");
}

TEST(tokenizer, user_defined_tokens_are_always_matched) {
  tokenizer t = make(tiny_byte_level());
  EXPECT_EQ(t.encode("<tool>hello", false, false), (ids{262, 259}));
}

TEST(tokenizer, decode_skips_control_tokens_on_request) {
  tokenizer t = make(tiny_byte_level());
  EXPECT_EQ(t.decode({259, 261}, false), "hello<|end|>");
  EXPECT_EQ(t.decode({259, 261}, true), "hello");
  EXPECT_TRUE(t.is_special(261));
  EXPECT_FALSE(t.is_special(259));
  EXPECT_EQ(t.eos_ids(), (ids{261}));
}

TEST(tokenizer, bos_and_eos_follow_the_vocabulary_flags) {
  tokenizer_data d = tiny_byte_level();
  d.bos_id = 261;
  d.add_bos = true;
  d.add_eos = true;
  tokenizer t = make(d);
  EXPECT_EQ(t.encode("hello", true), (ids{261, 259, 261}));
  EXPECT_EQ(t.encode("hello", false), (ids{259}));
}

TEST(tokenizer, arbitrary_bytes_never_crash_and_round_trip) {
  tokenizer t = make(tiny_byte_level());
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    ids out = t.encode(s, false, true);
    EXPECT_EQ(t.decode(out), s);
  }
  std::string invalid = "a\xC3(\xFF\xE2\x82 \xF0\x9F\x98";
  EXPECT_EQ(t.decode(t.encode(invalid, false)), invalid);
}

TEST(tokenizer, long_runs_without_splits_are_fast) {
  tokenizer t = make(tiny_byte_level());
  std::string spaces(200000, ' ');
  EXPECT_EQ(t.encode(spaces, false).size(), spaces.size());
}

// SentencePiece-style: <unk> <s> </s>, 256 byte tokens (3..258), then ▁ h i ▁h ▁hi x (259..264).
tokenizer_data tiny_spm() {
  tokenizer_data d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "</s>"};
  d.types = {token_type::unknown, token_type::control, token_type::control};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    d.tokens.push_back(buf);
    d.types.push_back(token_type::byte);
  }
  for (const char* t : {"\xE2\x96\x81", "h", "i", "\xE2\x96\x81h", "\xE2\x96\x81hi", "x"}) {
    d.tokens.push_back(t);
    d.types.push_back(token_type::normal);
  }
  d.scores.assign(d.tokens.size(), 0.0f);
  d.scores[259] = -3; d.scores[260] = -4; d.scores[261] = -5; d.scores[262] = -2; d.scores[263] = -1; d.scores[264] = -6;
  d.bos_id = 1;
  d.eos_id = 2;
  d.unk_id = 0;
  d.add_bos = true;
  d.add_space_prefix = true;
  return d;
}

TEST(tokenizer, sentencepiece_merges_by_score_with_space_prefix) {
  tokenizer t = make(tiny_spm());
  EXPECT_EQ(t.encode("hi hi", true), (ids{1, 263, 263}));
  EXPECT_EQ(t.decode({1, 263, 263}, true), "hi hi");
}

TEST(tokenizer, sentencepiece_falls_back_to_bytes) {
  tokenizer t = make(tiny_spm());
  ids out = t.encode("hé", false);
  EXPECT_EQ(out, (ids{262, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t.decode(out), "hé");
}

TEST(tokenizer, rejects_unknown_models) {
  tokenizer_data d = tiny_byte_level();
  d.model = "wordpiece";
  EXPECT_FALSE(tokenizer::from_data(d).ok());
}

// ---- the real SmolLM2 vocabulary ----

std::filesystem::path smollm2_gguf() {
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home ? home : "/root") / ".cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

nlohmann::json expected_cases() {
  std::ifstream in(std::string(TROUPE_TEST_DATA_DIR) + "/smollm2_tokenizer_expected.json");
  return nlohmann::json::parse(in);
}

void check_against_hf(const tokenizer& t) {
  nlohmann::json expected = expected_cases();
  ASSERT_FALSE(expected["cases"].empty());
  EXPECT_EQ(t.bos_id(), expected["bos_id"].get<int32_t>());
  EXPECT_EQ(t.eos_id(), expected["eos_id"].get<int32_t>());
  for (const auto& c : expected["cases"]) {
    std::string text = c["text"];
    SCOPED_TRACE("text: " + nlohmann::json(text).dump());
    ids special = t.encode(text, true, true);
    EXPECT_EQ(special, c["ids_parse_special"].get<ids>());
    EXPECT_EQ(t.encode(text, true, false), c["ids_no_parse_special"].get<ids>());
    EXPECT_EQ(t.decode(special, false), c["decode"].get<std::string>());
    EXPECT_EQ(t.decode(special, true), c["decode_skip_special"].get<std::string>());
  }
}

TEST(tokenizer, smollm2_hf_tokenizer_json_matches_hugging_face) {
  auto data = read_hf_tokenizer_data(std::string(TROUPE_TEST_DATA_DIR) + "/smollm2_tokenizer");
  ASSERT_TRUE(data.ok()) << data.err().to_string();
  EXPECT_EQ(data->model, "gpt2");
  EXPECT_EQ(data->pre, "smollm");
  EXPECT_FALSE(data->chat_template.empty());
  auto t = tokenizer::from_data(std::move(*data));
  ASSERT_TRUE(t.ok()) << t.err().to_string();
  check_against_hf(*t);
}

TEST(tokenizer, smollm2_gguf_vocabulary_matches_hugging_face) {
  if (!std::filesystem::exists(smollm2_gguf())) {
    std::printf("[ SKIPPED  ] model file absent: %s\n", smollm2_gguf().c_str());
    GTEST_SKIP() << "model file absent: " << smollm2_gguf();
  }
  auto data = read_gguf_tokenizer_data(smollm2_gguf());
  ASSERT_TRUE(data.ok()) << data.err().to_string();
  EXPECT_EQ(data->pre, "smollm");
  auto t = tokenizer::from_data(std::move(*data));
  ASSERT_TRUE(t.ok()) << t.err().to_string();
  EXPECT_EQ(t->vocab_size(), 49152);
  check_against_hf(*t);
}

}  // namespace
}  // namespace troupe
