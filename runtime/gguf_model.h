// GGUF entry points used outside the GGUF reader: the architecture, the tokenizer data and the
// weights of a .gguf file (v2/v3), each read from one memory mapping of the file.
#pragma once

#include <filesystem>
#include <memory>

#include "config/error.h"
#include "runtime/model_config.h"
#include "runtime/tokenizer_data.h"
#include "runtime/weight_source.h"

namespace troupe {

result<model_config> read_gguf_model_config(const std::filesystem::path& path);
result<tokenizer_data> read_gguf_tokenizer_data(const std::filesystem::path& path);
result<std::unique_ptr<weight_source>> open_gguf_weights(const std::filesystem::path& path);

}  // namespace troupe
