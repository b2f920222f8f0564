// Pre-tokenization: splits text into the pieces byte-level BPE merges within, using the regexes of
// the vocabulary's pre-tokenizer (gpt2, smollm, llama-bpe, qwen2) run by PCRE2 in UTF mode (JIT when
// available). Invalid UTF-8 never reaches PCRE2: each invalid byte becomes a piece of its own.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.h"

namespace troupe {

class pretokenizer {
 public:
  // `pre` is tokenizer_data::pre; unknown names fall back to the GPT-2 regex with a warning.
  static result<pretokenizer> make(const std::string& pre);

  // Appends the pieces of `text` (views into it, in order, covering all of it) to `out`.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

  struct compiled;  // one PCRE2 pattern (opaque, shared by copies)

 private:
  std::vector<std::shared_ptr<const compiled>> regexes_;  // applied one after another
};

// Length of the valid UTF-8 sequence starting at s[0], or 0 if it is invalid or truncated.
size_t utf8_sequence_length(std::string_view s);

}  // namespace troupe
