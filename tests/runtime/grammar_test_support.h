// Shared helpers of the grammar engine tests: a tiny synthetic vocabulary, the real SmolLM2
// tokenizer, compiling specs, and a brute-force check that a mask equals per-token acceptance.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/grammar_matcher.h"
#include "runtime/hf_tokenizer.h"
#include "runtime/tokenizer.h"

namespace troupe::grammar_test {

// All 256 single bytes (ids 0..255), then multi-byte pieces, then EOS (the last id).
inline std::shared_ptr<const grammar_vocab> tiny_vocab(bool strips_leading_space = false) {
  std::vector<std::string> pieces;
  for (int b = 0; b < 256; ++b) pieces.emplace_back(1, static_cast<char>(b));
  for (const char* p : {"{\"", "\":", "\",", "\"}", " \"", "\": \"", "true", "null", "ab", "abc", "\xC3\xA9",
                        "\xA9x", "12", "3.", "\"a\"", "}\n", " a", " ", "a\",\"b", "yes", "no", "[1,", "2]"}) {
    pieces.emplace_back(p);
  }
  pieces.emplace_back("</s>");
  const int32_t eos = static_cast<int32_t>(pieces.size()) - 1;
  return grammar_vocab::from_pieces(std::move(pieces), {eos}, strips_leading_space);
}

inline int32_t tiny_token(const grammar_vocab& v, const std::string& piece) {
  for (int32_t t = 0; t < v.vocab_size; ++t) {
    if (v.pieces[t] == piece) return t;
  }
  return -1;
}

inline const tokenizer& smollm2() {
  static const tokenizer t = [] {
    auto data = read_hf_tokenizer_data(std::string(TROUPE_TEST_DATA_DIR) + "/smollm2_tokenizer");
    EXPECT_TRUE(data.ok());
    auto tok = tokenizer::from_data(std::move(*data));
    EXPECT_TRUE(tok.ok());
    return std::move(*tok);
  }();
  return t;
}

inline std::shared_ptr<const compiled_constraint> compile_or_die(constraint_spec::kind k, const std::string& text,
                                                                 std::shared_ptr<const grammar_vocab> v) {
  auto c = compile_constraint_for_vocab(constraint_spec{k, text}, std::move(v));
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.err().to_string());
  return c.ok() ? *c : nullptr;
}

// Whole-string match through the byte interface.
inline bool matches(const compiled_constraint& c, const std::string& s) {
  auto m = c.start();
  auto* gm = dynamic_cast<grammar_matcher*>(m.get());
  return gm->accept_bytes(s) && gm->is_complete();
}

// The mask must say exactly which tokens accept() takes: checked on a clone per token in `ids`.
inline void expect_mask_exact(token_constraint& m, int32_t vocab, const std::vector<int32_t>& ids) {
  token_mask mask;
  mask.resize(vocab);
  m.fill_mask(mask);
  for (int32_t t : ids) {
    auto c = m.clone();
    ASSERT_EQ(mask.test(t), c->accept(t)) << "token " << t;
  }
}

}  // namespace troupe::grammar_test
