// Fuzzes the tool-call output parsers over arbitrary model output: the generic envelope
// (net/tool_call_parser.h) and each native format (net/native_tool_format.h: Hermes <tool_call>,
// Llama 3 JSON, Mistral [TOOL_CALLS]) when the first byte is 1, 2 or 3 (the rest is the text). None may throw or crash, and
// whatever one calls a tool call names a known tool and carries arguments that parse as a JSON object.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/native_tool_format.h"
#include "net/tool_call_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> known{"get_weather", "f"};
  const bool native = size > 0 && data[0] >= 1 && data[0] <= 3;
  const auto format = native ? static_cast<troupe::tool_format>(data[0]) : troupe::tool_format::generic;
  const std::string text(reinterpret_cast<const char*>(data) + (native ? 1 : 0), size - (native ? 1 : 0));
  const troupe::tool_output out = format == troupe::tool_format::generic
                                      ? troupe::parse_tool_output(text, known)
                                      : troupe::parse_native_tool_output(format, text, known);
  if (!out.is_calls) return 0;
  if (out.calls.empty()) std::abort();
  for (const auto& c : out.calls) {
    if (c.name != known[0] && c.name != known[1]) std::abort();
    const auto args = nlohmann::json::parse(c.arguments, nullptr, false);
    if (args.is_discarded() || !args.is_object()) std::abort();
  }
  return 0;
}
