// Gemma 3 (text) configuration: the keys of its Hugging Face config.json and GGUF header beyond the
// Llama family's (local/global layer pattern, two rope bases, query scaling, soft-capping), and the
// checks a Gemma 3 config must pass. Internal to model_config.cpp and gguf_model.cpp.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "runtime/model_config.h"

namespace troupe {

class gguf_file;

// Fills the Gemma 3 fields of `c` (already holding the common keys) from config.json's object `j`.
status read_gemma3_hf(const nlohmann::json& j, model_config& c, const std::string& origin);

// The same from a GGUF header (keys under "gemma3."), following llama.cpp's conventions: norms
// already hold 1 + w, local layers every layer but each sixth, local rope base 10000.
status read_gemma3_gguf(const gguf_file& f, model_config& c);

// Gemma 3 invariants: a window that fits the context, one layer type per layer. Errors name the key.
status validate_gemma3(const model_config& c, const std::string& origin);

}  // namespace troupe
