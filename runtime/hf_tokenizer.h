// Reads a Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json and, when present,
// generation_config.json for extra EOS ids) into tokenizer_data, the form GGUF files also give.
#pragma once

#include <filesystem>

#include "config/error.h"
#include "runtime/tokenizer_data.h"

namespace troupe {

result<tokenizer_data> read_hf_tokenizer_data(const std::filesystem::path& folder);

}  // namespace troupe
