// Safetensors reader: one .safetensors file, or a Hugging Face folder holding model.safetensors or
// shards listed by model.safetensors.index.json. Each file is memory-mapped once; the JSON header
// is checked against the file (lengths, offsets, dtype sizes) before any tensor is handed out.
#pragma once

#include <filesystem>
#include <memory>

#include "config/error.h"
#include "runtime/weight_source.h"

namespace troupe {

// Opens one .safetensors file. Every bound is checked at open: a truncated file, a header length
// beyond the file, offsets out of range or a byte size that disagrees with dtype x shape are
// errc::corrupt_file naming the file (and the tensor).
result<std::unique_ptr<weight_source>> open_safetensors_file(const std::filesystem::path& file);

// Opens an HF folder: model.safetensors.index.json (sharded) when present, else model.safetensors.
result<std::unique_ptr<weight_source>> open_safetensors_folder(const std::filesystem::path& dir);

// Bytes per element of a safetensors dtype ("F32" -> 4), 0 when unknown.
int64_t safetensors_dtype_size(const std::string& dtype);

}  // namespace troupe
