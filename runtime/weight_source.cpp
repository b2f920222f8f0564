// open_weights: the one entry point from a path to a weight_source. Dispatches on what the path is:
// a .gguf file (GGUF reader), a .safetensors file, an index json, or a Hugging Face folder.
#include "runtime/weight_source.h"

#include "runtime/gguf_model.h"
#include "runtime/safetensors.h"

namespace troupe {

result<std::unique_ptr<weight_source>> open_weights(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return make_error(errc::not_found, "no model at " + path.string());
  if (std::filesystem::is_directory(path, ec)) return open_safetensors_folder(path);
  const std::string ext = path.extension().string();
  if (ext == ".gguf") return open_gguf_weights(path);
  if (ext == ".safetensors") return open_safetensors_file(path);
  if (path.filename() == "model.safetensors.index.json") return open_safetensors_folder(path.parent_path());
  return make_error(errc::unsupported,
                    path.string() + ": not a .gguf file, a .safetensors file or a Hugging Face folder");
}

}  // namespace troupe
