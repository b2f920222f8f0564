// Everything a tokenizer is built from, whatever file it came from: GGUF metadata
// (tokenizer.ggml.*) or Hugging Face tokenizer.json + tokenizer_config.json. Plain data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

// Token types as GGUF numbers them (llama.cpp's llama_token_type).
enum class token_type : int32_t { undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct tokenizer_data {
  std::string model;  // "gpt2" (byte-level BPE) | "llama" (SentencePiece-style BPE)
  std::string pre;    // pre-tokenizer: "smollm" | "llama-bpe" | "qwen2" | "gpt2" | "default" ...
  std::vector<std::string> tokens;     // [vocab] token text as stored (byte-level encoded for gpt2)
  std::vector<token_type> types;       // [vocab]
  std::vector<float> scores;           // [vocab] SentencePiece scores (empty for gpt2)
  std::vector<std::string> merges;     // "a b" merge rules, highest priority first
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  std::vector<int32_t> extra_eos_ids;  // e.g. <|eot_id|>, <|im_end|>
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;       // SentencePiece "▁" prefix
  std::string chat_template;           // Jinja source, empty if none
};

}  // namespace troupe
