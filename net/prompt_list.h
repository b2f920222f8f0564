// The `prompt` field of /v1/completions as OpenAI accepts it: a string, a list of token ids, a list
// of strings, or a list of token-id lists (a batch: choices come back prompt-major x n). Each prompt
// keeps the text it is echoed as. Bad shapes, empty prompts and lists over the bound are a 400
// naming "prompt"; nothing here throws.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/api_error.h"
#include "net/text_codec.h"

namespace troupe {

constexpr size_t k_max_prompts = 64;  // prompts in one request (each becomes an engine request)

struct prompt_item {
  std::vector<int32_t> ids;
  std::string text;  // the string sent, or the ids decoded (echo, text_offset)
};

struct prompt_list_options {
  const text_codec* codec = nullptr;  // null or without tokenizer: token ids only
  int64_t vocab_size = 0;             // ids must be below; 0 = unchecked
  bool add_special = true;            // tokenizer's BOS etc. for string prompts
  size_t max_prompts = k_max_prompts;
};

// `prompt` is the field's value (not null).
std::variant<std::vector<prompt_item>, api_error> parse_prompt_list(const nlohmann::json& prompt,
                                                                    const prompt_list_options& opts);

}  // namespace troupe
