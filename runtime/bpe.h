// The BPE merge engine shared by both tokenizer families, and GPT-2's byte <-> unicode mapping.
// Byte-level BPE ranks a pair by its merge rule; SentencePiece-style BPE ranks it by the score of
// the merged token. Knows nothing of special tokens or pre-tokenization (see tokenizer.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe {

// GPT-2's printable spelling of one byte: the UTF-8 of the unicode character standing for it.
const std::string& byte_to_unicode(uint8_t byte);
// The byte a unicode character stands for, or -1 if it is not part of the mapping.
int unicode_to_byte(uint32_t codepoint);
// Raw bytes -> their byte-level spelling (what byte-level vocabularies store).
std::string byte_level_encode(std::string_view bytes);
// Byte-level spelling -> raw bytes; characters outside the mapping pass through unchanged.
std::string byte_level_decode(std::string_view text);

class bpe_model {
 public:
  // Ranks by `merges` ("a b", best first) when `scores` is empty, else by score of the merged token.
  void init(const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
            const std::vector<float>& scores);

  int32_t find(std::string_view text) const;  // -1 if not a token

  // Merges the characters of `word` and appends the ids. A final symbol that is not a token is
  // handed to `fallback(symbol_text, out)`.
  using fallback_fn = std::function<void(std::string_view, std::vector<int32_t>&)>;
  void encode(std::string_view word, std::vector<int32_t>& out, const fallback_fn& fallback) const;

 private:
  struct pair_info {
    double priority;  // lower merges first
    int32_t merged;   // id of the merged token
  };
  bool pair_of(int32_t left, int32_t right, std::string_view merged_text, pair_info& info) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, pair_info> merges_;  // key: left id << 32 | right id
  std::vector<float> scores_;                       // [vocab] when ranking by score
};

}  // namespace troupe
