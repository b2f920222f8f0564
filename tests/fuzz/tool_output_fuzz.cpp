// Fuzzes the tool-call output parsers over arbitrary model output: the generic envelope
// (net/tool_call_parser.h) and each native format (net/native_tool_format.h: Hermes <tool_call>,
// Llama 3 JSON, Mistral [TOOL_CALLS], Llama 3.2 pythonic) when the first byte is 1 to 4 (the rest is the text). None may
// throw or crash, and whatever one calls a tool call names a known tool and carries arguments that parse as a JSON
// object. The same text is also streamed through net/tool_stream.h in pieces: heads come in order, arguments only
// follow a head, every head names a known tool, and when the answer is calls the streamed calls are the parsed
// ones (names, and arguments byte for byte).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/native_tool_format.h"
#include "net/tool_call_parser.h"
#include "net/tool_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> known{"get_weather", "f"};
  const bool native = size > 0 && data[0] >= 1 && data[0] <= 4;
  const auto format = native ? static_cast<troupe::tool_format>(data[0]) : troupe::tool_format::generic;
  const std::string text(reinterpret_cast<const char*>(data) + (native ? 1 : 0), size - (native ? 1 : 0));
  const troupe::tool_output out = format == troupe::tool_format::generic
                                      ? troupe::parse_tool_output(text, known)
                                      : troupe::parse_native_tool_output(format, text, known);
  troupe::tool_stream ts(format, known);
  const size_t piece = 1 + (text.empty() ? 0 : static_cast<unsigned char>(text[0]) % 7);
  size_t heads = 0;
  std::vector<std::pair<std::string, std::string>> streamed;  // name, arguments
  const auto check = [&](const troupe::tool_delta& d) {
    for (const auto& c : d.calls) {
      if (c.head) {
        if (static_cast<size_t>(c.index) != heads++ || (c.name != known[0] && c.name != known[1])) std::abort();
        streamed.push_back({c.name, {}});
      } else if (static_cast<size_t>(c.index) >= heads) {
        std::abort();
      } else {
        streamed[static_cast<size_t>(c.index)].second += c.arguments;
      }
    }
  };
  for (size_t at = 0; at < text.size(); at += piece) check(ts.feed(text.substr(at, piece)));
  bool calls = false;
  check(ts.finish(troupe::finish_reason::stop, calls));
  if (calls != out.is_calls) std::abort();
  if (!out.is_calls) return 0;
  if (out.calls.empty() || streamed.size() != out.calls.size()) std::abort();
  for (size_t i = 0; i < out.calls.size(); ++i) {
    if (streamed[i].first != out.calls[i].name || streamed[i].second != out.calls[i].arguments) std::abort();
  }
  for (const auto& c : out.calls) {
    if (c.name != known[0] && c.name != known[1]) std::abort();
    const auto args = nlohmann::json::parse(c.arguments, nullptr, false);
    if (args.is_discarded() || !args.is_object()) std::abort();
  }
  return 0;
}
