// PLACEHOLDER until the GGUF reader lands (replaced by the GGUF work).
#include "runtime/gguf_model.h"

namespace troupe {

result<model_config> read_gguf_model_config(const std::filesystem::path& path) {
  return make_error(errc::unsupported, "GGUF reader not built yet: " + path.string());
}
result<tokenizer_data> read_gguf_tokenizer_data(const std::filesystem::path& path) {
  return make_error(errc::unsupported, "GGUF reader not built yet: " + path.string());
}
result<std::unique_ptr<weight_source>> open_gguf_weights(const std::filesystem::path& path) {
  return make_error(errc::unsupported, "GGUF reader not built yet: " + path.string());
}

}  // namespace troupe
