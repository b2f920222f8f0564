// Fuzzes the Hugging Face config.json reader (parse_hf_config) and the model checks that follow it.
#include <cstdint>
#include <string>

#include "runtime/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = parse_hf_config(text, "fuzz/config.json");
  if (cfg.ok()) (void)validate_model_config(cfg.value(), "fuzz/config.json");
  return 0;
}
