// Fuzzes the tokenizer on arbitrary bytes: the real SmolLM2 byte-level BPE (encode must round-trip
// through decode for any bytes) and a small SentencePiece-style vocabulary with byte fallback.
// Input: 1 flags byte (add_special, parse_special, which vocabulary) + text; decode also gets ids.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.h"

namespace {

using namespace troupe;

// <unk> <s> </s>, the 256 <0xXX> byte tokens, then a few merged pieces with scores.
const tokenizer& tiny_spm() {
  static const tokenizer t = [] {
    tokenizer_data d;
    d.model = "llama";
    d.pre = "default";
    d.tokens = {"<unk>", "<s>", "</s>"};
    d.types = {token_type::unknown, token_type::control, token_type::control};
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      d.tokens.push_back(buf);
      d.types.push_back(token_type::byte);
    }
    for (const char* p : {"\xE2\x96\x81", "a", "b", "ab", "\xE2\x96\x81" "a", "\xE2\x96\x81" "ab", "<tool>"}) {
      d.tokens.push_back(p);
      d.types.push_back(token_type::normal);
    }
    d.types.back() = token_type::user_defined;
    d.scores.assign(d.tokens.size(), 0.0f);
    for (size_t i = 259; i < d.tokens.size(); ++i) d.scores[i] = -static_cast<float>(i - 258);
    d.unk_id = 0;
    d.bos_id = 1;
    d.eos_id = 2;
    d.add_bos = true;
    d.add_space_prefix = true;
    auto tok = tokenizer::from_data(std::move(d));
    if (!tok.ok()) fuzz::fail_setup(tok.err().to_string());
    return std::move(tok).value();
  }();
  return t;
}

// True when every byte of `text` has its byte-level token. SmolLM2's vocabulary lacks 21 of the
// 256 (0x04, 0x14, 0xF1...); those bytes are dropped, as Hugging Face tokenizers drops them.
bool all_bytes_in_vocab(const tokenizer& t, const std::string& text) {
  static const std::vector<bool> has = [&t] {
    std::vector<bool> h(256);
    for (int b = 0; b < 256; ++b) h[b] = t.token_id(byte_to_unicode(static_cast<uint8_t>(b))) >= 0;
    return h;
  }();
  for (unsigned char c : text) {
    if (!has[c]) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool add_special = flags & 1;
  const bool parse_special = flags & 2;
  const tokenizer& t = (flags & 4) ? tiny_spm() : fuzz::smollm2_tokenizer();

  std::vector<int32_t> ids = t.encode(text, add_special, parse_special);
  for (int32_t id : ids) {
    if (id < 0 || id >= t.vocab_size()) std::abort();
  }
  std::string back = t.decode(ids, false);
  // Byte-level BPE without added specials loses nothing: the bytes come back unchanged, valid
  // UTF-8 or not, as long as the vocabulary has a token for each byte.
  if (!(flags & 4) && !add_special && back != text && all_bytes_in_vocab(t, text)) std::abort();

  // The same bytes read as token ids (any int32, in or out of the vocabulary).
  std::vector<int32_t> raw((size - 1) / 4);
  for (size_t i = 0; i < raw.size(); ++i) std::memcpy(&raw[i], data + 1 + 4 * i, 4);
  (void)t.decode(raw, flags & 8);
  for (int32_t id : raw) (void)t.token_to_piece(id, flags & 8);
  return 0;
}
