// incremental_decoder tests: streamed text equals the full decode, and no chunk is ever broken
// UTF-8, for byte-level BPE (emoji split across tokens) and SentencePiece (leading space, bytes).
#include <gtest/gtest.h>

#include "runtime/bpe.h"
#include "runtime/incremental_decoder.h"
#include "runtime/pretokenizer.h"
#include "runtime/tokenizer.h"

namespace troupe {
namespace {

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence_length(std::string_view(s).substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

tokenizer byte_vocab() {
  tokenizer_data d;
  d.model = "gpt2";
  d.pre = "gpt2";
  for (int b = 0; b < 256; ++b) d.tokens.push_back(byte_to_unicode(static_cast<uint8_t>(b)));
  d.tokens.push_back("<|end|>");
  d.types.assign(d.tokens.size(), token_type::normal);
  d.types[256] = token_type::control;
  auto t = tokenizer::from_data(d);
  EXPECT_TRUE(t.ok());
  return std::move(t).value();
}

TEST(incremental_decoder, holds_back_incomplete_utf8_and_matches_full_decode) {
  tokenizer tok = byte_vocab();
  std::string text = "héllo 😀👨‍👩‍👧 日本";
  std::vector<int32_t> ids = tok.encode(text, false);
  ids.push_back(256);
  incremental_decoder dec(tok, true);
  std::string streamed;
  for (int32_t id : ids) {
    std::string chunk = dec.push(id);
    EXPECT_TRUE(valid_utf8(chunk));
    streamed += chunk;
  }
  streamed += dec.flush();
  EXPECT_EQ(streamed, text);
}

TEST(incremental_decoder, replaces_bytes_that_never_complete) {
  tokenizer tok = byte_vocab();
  incremental_decoder dec(tok);
  EXPECT_EQ(dec.push(0xF0), "");  // first byte of a 4-byte sequence: held
  EXPECT_EQ(dec.push(0x9F), "");
  EXPECT_EQ(dec.push('a'), "\xEF\xBF\xBD\xEF\xBF\xBD" "a");  // cut short by 'a'
  EXPECT_EQ(dec.push(0xE2), "");
  EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(dec.push(0xFF), "\xEF\xBF\xBD");  // never valid anywhere
}

TEST(incremental_decoder, sentencepiece_drops_only_the_first_leading_space) {
  tokenizer_data d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "\xE2\x96\x81hi", "\xE2\x96\x81there"};
  d.types = {token_type::unknown, token_type::control, token_type::normal, token_type::normal};
  d.scores = {0, 0, -1, -2};
  d.add_space_prefix = true;
  d.bos_id = 1;
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    d.tokens.push_back(buf);
    d.types.push_back(token_type::byte);
    d.scores.push_back(0);
  }
  auto tok = tokenizer::from_data(d);
  ASSERT_TRUE(tok.ok());
  incremental_decoder dec(*tok, true);
  std::string s;
  for (int32_t id : {1, 2, 3, 4 + 0xC3, 4 + 0xA9}) s += dec.push(id);
  s += dec.flush();
  EXPECT_EQ(s, "hi thereé");
  EXPECT_EQ(tok->decode({1, 2, 3, 4 + 0xC3, 4 + 0xA9}, true), "hi thereé");
}

}  // namespace
}  // namespace troupe
