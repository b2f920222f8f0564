// The tokenizer: text <-> token ids for byte-level BPE vocabularies (GPT-2, Llama 3, Qwen2, SmolLM2)
// and SentencePiece-style BPE (Llama 2: scores, "▁" for spaces, <0xXX> byte fallback), with special
// and added tokens matched whole before BPE. Immutable after construction; safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/error.h"
#include "runtime/bpe.h"
#include "runtime/pretokenizer.h"
#include "runtime/tokenizer_data.h"

namespace troupe {

class tokenizer {
 public:
  static result<tokenizer> from_data(tokenizer_data data);

  // add_special: BOS/EOS as the vocabulary asks (add_bos/add_eos). parse_special: match control
  // tokens such as <|im_start|> in the text (on for chat-template output, off for raw user text);
  // user-defined added tokens are always matched. Any bytes are accepted, valid UTF-8 or not.
  std::vector<int32_t> encode(std::string_view text, bool add_special = true, bool parse_special = false) const;

  // skip_special drops control tokens (BOS, EOS, <|im_end|>...). Bytes are returned as decoded:
  // a cut in the middle of a UTF-8 sequence is not repaired (incremental_decoder does that).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  // The raw bytes one token contributes to decoded text ("" for skipped or unknown ids), before the
  // leading-space strip that SentencePiece decoding applies to the first token.
  std::string token_to_piece(int32_t id, bool skip_special = false) const;
  // True when decoding drops the first space of the output (SentencePiece with add_space_prefix).
  bool strips_leading_space() const { return spm_ && data_.add_space_prefix; }

  const std::string& token_text(int32_t id) const;  // as stored in the vocabulary; "" if out of range
  int32_t token_id(std::string_view text) const;     // -1 if not a token
  int32_t vocab_size() const { return static_cast<int32_t>(data_.tokens.size()); }
  int32_t bos_id() const { return data_.bos_id; }
  int32_t eos_id() const { return data_.eos_id; }
  std::vector<int32_t> eos_ids() const;  // eos + extra eos ids, without duplicates
  bool is_eos(int32_t id) const;
  bool is_special(int32_t id) const;     // control tokens
  bool add_bos() const { return data_.add_bos; }
  bool add_eos() const { return data_.add_eos; }
  const std::string& chat_template_source() const { return data_.chat_template; }
  const tokenizer_data& data() const { return data_; }

 private:
  struct fragment {
    std::string_view text;  // raw text when token < 0
    int32_t token = -1;
  };
  void split_special(std::string_view text, bool parse_special, std::vector<fragment>& out) const;
  void encode_byte_level(std::string_view text, std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
  void byte_fallback(std::string_view raw, std::vector<int32_t>& out) const;

  tokenizer_data data_;
  bool spm_ = false;
  bpe_model bpe_;
  pretokenizer pre_;
  std::vector<int32_t> byte_tokens_;  // [256] id of <0xXX> (SentencePiece) or -1
  // Special/added tokens by first byte, longest first: (text, id, always matched).
  struct added_token {
    std::string text;
    int32_t id;
    bool always;
  };
  std::vector<std::vector<added_token>> added_by_byte_;  // [256]
};

}  // namespace troupe
