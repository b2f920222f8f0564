// Fuzzes the tool-call output parser (net/tool_call_parser.h) over arbitrary model output: it must
// never throw or crash, and whatever it calls a tool call names a known tool and carries arguments
// that parse as a JSON object.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/tool_call_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> known{"get_weather", "f"};
  const std::string text(reinterpret_cast<const char*>(data), size);
  const troupe::tool_output out = troupe::parse_tool_output(text, known);
  if (!out.is_calls) return 0;
  if (out.calls.empty()) std::abort();
  for (const auto& c : out.calls) {
    if (c.name != known[0] && c.name != known[1]) std::abort();
    const auto args = nlohmann::json::parse(c.arguments, nullptr, false);
    if (args.is_discarded() || !args.is_object()) std::abort();
  }
  return 0;
}
