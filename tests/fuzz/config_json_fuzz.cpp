// Fuzzes the config file reader: apply_config_json onto default options (keys are long flag names),
// then validate_options on whatever it accepted.
#include <cstdint>
#include <string>

#include "config/cli.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  troupe_options opts;
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (apply_config_json(text, "fuzz.json", opts).ok()) (void)validate_options(opts);
  return 0;
}
