// Streaming detokenization: turns sampled token ids into text chunks that are always complete,
// valid UTF-8. Incomplete trailing bytes are held back until the next token completes them;
// bytes that can never form a character become U+FFFD. One decoder per generated sequence.
#pragma once

#include <cstdint>
#include <string>

namespace troupe {

class tokenizer;

class incremental_decoder {
 public:
  // The tokenizer must outlive the decoder.
  explicit incremental_decoder(const tokenizer& tok, bool skip_special = true);

  // Text made complete by this token (possibly empty while a character is still incomplete).
  std::string push(int32_t id);
  // The held-back bytes at the end of the stream, invalid ones replaced by U+FFFD.
  std::string flush();

 private:
  std::string take_complete(bool at_end);

  const tokenizer* tok_;
  bool skip_special_;
  bool first_ = true;    // SentencePiece drops the first leading space of the output
  std::string pending_;  // bytes not yet emitted
};

}  // namespace troupe
