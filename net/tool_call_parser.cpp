// Parsing the generic tool-call envelope (see tool_call_parser.h). Model output is untrusted: its
// nesting is bounded before nlohmann parses it, and nothing here throws.
#include "net/tool_call_parser.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "net/json_guard.h"
#include "net/json_raw.h"

namespace troupe {
namespace {

using json = nlohmann::json;

constexpr int32_t k_max_output_depth = 64;

tool_output as_text(std::string_view text) {
  tool_output out;
  out.content = std::string(text);
  return out;
}

std::string_view trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

// arguments: an object, or (as OpenAI sends them) a string holding one; absent means {}. An
// object comes back as the model wrote it (`raw`: the call's text), whitespace dropped, which is
// what the stream sends (net/tool_stream.h).
bool read_arguments(const json& call, std::string_view raw, std::string& out) {
  auto it = call.find("arguments");
  if (it == call.end() || it->is_null()) {
    out = "{}";
    return true;
  }
  if (it->is_object()) {
    const std::optional<std::string_view> written = json_raw_member(raw, "arguments");
    out = written ? json_compact(*written) : it->dump(-1, ' ', false, json::error_handler_t::replace);
    return true;
  }
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    if (json_nesting_depth(s, k_max_output_depth) > k_max_output_depth) return false;
    json inner = json::parse(s, nullptr, false);
    if (inner.is_discarded() || !inner.is_object()) return false;
    out = inner.dump(-1, ' ', false, json::error_handler_t::replace);
    return true;
  }
  return false;
}

}  // namespace

tool_output parse_tool_output(std::string_view text, const std::vector<std::string>& known) {
  const std::string_view body = trim(text);
  if (body.empty() || body.front() != '{') return as_text(text);
  if (json_nesting_depth(body, k_max_output_depth) > k_max_output_depth) return as_text(text);
  const json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return as_text(text);
  if (auto c = j.find("content"); c != j.end() && j.size() == 1) {
    if (c->is_string()) return as_text(c->get<std::string>());
    // Under tools + response_format the content is the formatted JSON value, as written.
    const std::optional<std::string_view> written = json_raw_member(body, "content");
    return (c->is_object() || c->is_array()) && written ? as_text(json_compact(*written)) : as_text(text);
  }
  auto calls = j.find("tool_calls");
  if (calls == j.end() || j.size() != 1 || !calls->is_array() || calls->empty()) return as_text(text);
  const std::optional<std::string_view> list = json_raw_member(body, "tool_calls");
  const std::vector<std::string_view> raw = list ? json_raw_elements(*list) : std::vector<std::string_view>{};
  tool_output out;
  out.is_calls = true;
  for (size_t i = 0; i < calls->size(); ++i) {
    const json& call = (*calls)[i];
    if (!call.is_object()) return as_text(text);
    auto name = call.find("name");
    if (name == call.end() || !name->is_string()) return as_text(text);
    const std::string& n = name->get_ref<const std::string&>();
    if (std::find(known.begin(), known.end(), n) == known.end()) return as_text(text);
    parsed_tool_call pc;
    pc.name = n;
    if (!read_arguments(call, i < raw.size() ? raw[i] : std::string_view{}, pc.arguments)) return as_text(text);
    out.calls.push_back(std::move(pc));
  }
  return out;
}

}  // namespace troupe
