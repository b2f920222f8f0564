// A model's weights as a read-only set of named tensors, whatever the file format. Names and
// layouts follow Hugging Face: "model.layers.3.self_attn.q_proj.weight" with shape [out, in],
// row-major. GGUF readers map their names (blk.3.attn_q.weight) and undo llama.cpp's q/k row
// permutation so that every consumer sees one convention.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/error.h"
#include "runtime/model_config.h"

namespace troupe {

// One tensor's bytes exactly as the file stores them, in HF row order, inside a read-only mapping
// that `keep` holds alive: what a weight_matrix can point at instead of copying (see
// weight_source::view). `dtype` names the storage type as tensor_info::dtype does.
struct tensor_bytes {
  const uint8_t* data = nullptr;  // [bytes]
  uint64_t bytes = 0;
  std::string dtype;
  std::shared_ptr<const void> keep;  // owns the mapping
};

struct tensor_info {
  std::string name;            // HF-style name
  std::vector<int64_t> shape;  // HF order, e.g. [out, in]
  std::string dtype;           // storage type: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q6_K ...
  int64_t num_elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class weight_source {
 public:
  virtual ~weight_source() = default;
  // Every tensor the file holds, HF names.
  virtual const std::vector<tensor_info>& tensors() const = 0;
  // Dequantizes/converts one tensor to float32 into `out` (resized to num_elements). Errors name
  // the file and the tensor.
  virtual status read_f32(const std::string& name, std::vector<float>& out) const = 0;
  // One tensor's bytes exactly as stored (GGML blocks of `ggml_type`), rows in HF order; only for
  // sources that keep GGML block formats (GGUF). Others answer errc::unsupported and are read
  // through read_f32.
  virtual status read_raw(const std::string& name, uint32_t& ggml_type, std::vector<uint8_t>& out) const {
    (void)ggml_type;
    (void)out;
    return make_error(errc::unsupported, origin() + ": tensor '" + name + "' has no raw GGML form");
  }
  // The tensor's stored bytes in place, when the file holds them in HF order (no GGUF q/k row
  // permutation to undo); nullopt otherwise (or for sources with no mapping, such as shards).
  // Touches no tensor data: the planner asks it too.
  virtual std::optional<tensor_bytes> view(const std::string& name) const {
    (void)name;
    return std::nullopt;
  }
  // Whether read_raw answers (GGUF files): the planner counts block-format tensors as held only then.
  virtual bool has_raw_blocks() const { return false; }
  // The file(s) behind this source, for messages.
  virtual std::string origin() const = 0;

  const tensor_info* find(const std::string& name) const {
    for (const auto& t : tensors())
      if (t.name == name) return &t;
    return nullptr;
  }
};

// Opens a GGUF file, a safetensors file, or an HF folder (model.safetensors or a sharded
// model.safetensors.index.json). Files are memory-mapped and never read twice.
result<std::unique_ptr<weight_source>> open_weights(const std::filesystem::path& path);

}  // namespace troupe
