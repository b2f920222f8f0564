// Native tool formats (see native_tool_format.h). Model output is untrusted: nesting is bounded
// before nlohmann parses it, and nothing here throws.
#include "net/native_tool_format.h"

#include <algorithm>
#include <cctype>

#include "net/json_guard.h"
#include "net/json_raw.h"
#include "net/pythonic_calls.h"
#include "net/tool_request.h"

namespace troupe {
namespace {

using json = nlohmann::json;

constexpr int32_t k_max_depth = 64;

std::string_view trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

// Prose before native calls keeps its leading whitespace: a stream sends prose before it knows
// whether calls follow (net/tool_stream.h).
std::string_view rtrim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool contains(std::string_view s, std::string_view needle) { return s.find(needle) != std::string_view::npos; }

json parse_bounded(std::string_view s) {
  if (json_nesting_depth(s, k_max_depth) > k_max_depth) return json(json::value_t::discarded);
  return json::parse(s.begin(), s.end(), nullptr, false);
}

tool_output as_text(std::string_view text) {
  tool_output out;
  out.content = std::string(text);
  return out;
}

// One call object: {"name", <args_key>: object or JSON text of one}. Llama 3 writes "parameters",
// the others "arguments"; either is read. `raw`: the object's text, whose arguments object is
// returned as written (whitespace dropped), as the stream sends it (net/tool_stream.h).
bool read_call(const json& c, std::string_view raw, const std::vector<std::string>& known, parsed_tool_call& out) {
  if (!c.is_object()) return false;
  auto name = c.find("name");
  if (name == c.end() || !name->is_string()) return false;
  const std::string& n = name->get_ref<const std::string&>();
  if (std::find(known.begin(), known.end(), n) == known.end()) return false;
  auto args = c.find("arguments");
  if (args == c.end()) args = c.find("parameters");
  json a = json::object();
  if (args != c.end() && !args->is_null()) {
    a = args->is_string() ? parse_bounded(args->get_ref<const std::string&>()) : *args;
    if (a.is_discarded() || !a.is_object()) return false;
  }
  out.name = n;
  std::optional<std::string_view> written;
  if (args != c.end() && args->is_object()) written = json_raw_member(raw, args.key());
  out.arguments = written ? json_compact(*written) : a.dump(-1, ' ', false, json::error_handler_t::replace);
  return true;
}

// <tool_call>{...}</tool_call>, one or more; text before the first is kept as content. A block left
// open at the end (the model stopped on </tool_call> or at EOS) is read to the end.
tool_output parse_hermes(std::string_view text, const std::vector<std::string>& known) {
  static constexpr std::string_view open = "<tool_call>", close = "</tool_call>";
  size_t at = text.find(open);
  if (at == std::string_view::npos) return as_text(text);
  tool_output out;
  out.content = std::string(rtrim(text.substr(0, at)));
  while (at != std::string_view::npos) {
    const size_t body = at + open.size();
    size_t end = text.find(close, body);
    const std::string_view inner = text.substr(body, end == std::string_view::npos ? text.npos : end - body);
    parsed_tool_call pc;
    if (!read_call(parse_bounded(trim(inner)), trim(inner), known, pc)) return as_text(text);
    out.calls.push_back(std::move(pc));
    if (end == std::string_view::npos) break;
    const std::string_view rest = text.substr(end + close.size());
    const size_t next = rest.find(open);
    if (next == std::string_view::npos) {
      if (!trim(rest).empty()) return as_text(text);  // prose after the calls: not a clean answer
      break;
    }
    if (!trim(rest.substr(0, next)).empty()) return as_text(text);
    at = end + close.size() + next;
  }
  out.is_calls = true;
  return out;
}

// {"name", "parameters"} (optionally after <|python_tag|>), several separated by ';'.
tool_output parse_llama3(std::string_view text, const std::vector<std::string>& known) {
  std::string_view body = trim(text);
  static constexpr std::string_view tag = "<|python_tag|>";
  if (body.substr(0, tag.size()) == tag) body = trim(body.substr(tag.size()));
  if (body.empty() || body.front() != '{') return as_text(text);
  tool_output out;
  // Split on ';' between top-level objects: parse greedily from each '{' with nlohmann's
  // strict parser over candidate ends.
  while (!body.empty()) {
    size_t cut = body.size();
    std::string_view raw;
    json j = json(json::value_t::discarded);
    for (size_t semi = body.find(';'); ; semi = body.find(';', semi + 1)) {
      const size_t end = semi == std::string_view::npos ? body.size() : semi;
      raw = trim(body.substr(0, end));
      j = parse_bounded(raw);
      if (!j.is_discarded()) {
        cut = end;
        break;
      }
      if (semi == std::string_view::npos) break;
    }
    parsed_tool_call pc;
    if (j.is_discarded() || !read_call(j, raw, known, pc)) return as_text(text);
    out.calls.push_back(std::move(pc));
    body = cut >= body.size() ? std::string_view{} : trim(body.substr(cut + 1));
  }
  out.is_calls = !out.calls.empty();
  return out.is_calls ? out : as_text(text);
}

// [TOOL_CALLS] [{"name", "arguments"}, ...]
tool_output parse_mistral(std::string_view text, const std::vector<std::string>& known) {
  static constexpr std::string_view tag = "[TOOL_CALLS]";
  const size_t at = text.find(tag);
  if (at == std::string_view::npos) return as_text(text);
  const std::string_view list = trim(text.substr(at + tag.size()));
  const json j = parse_bounded(list);
  if (j.is_discarded() || !j.is_array() || j.empty()) return as_text(text);
  const std::vector<std::string_view> raw = json_raw_elements(list);
  tool_output out;
  out.content = std::string(rtrim(text.substr(0, at)));
  for (size_t i = 0; i < j.size(); ++i) {
    parsed_tool_call pc;
    if (!read_call(j[i], i < raw.size() ? raw[i] : std::string_view{}, known, pc)) return as_text(text);
    out.calls.push_back(std::move(pc));
  }
  out.is_calls = true;
  return out;
}

}  // namespace

tool_format detect_tool_format(std::string_view src) {
  if (!contains(src, "tools")) return tool_format::generic;
  // Llama 3.2's pythonic templates ask for "[func_name1(params_name1=params_value1, ...)]".
  if (contains(src, "func_name1(")) return tool_format::pythonic;
  if (contains(src, "<tool_call>")) return tool_format::hermes;
  if (contains(src, "[TOOL_CALLS]")) return tool_format::mistral;
  if (contains(src, "<|python_tag|>") || contains(src, "\"parameters\"")) return tool_format::llama3;
  return tool_format::generic;
}

json template_tools(const tool_request& t) {
  json out = json::array();
  for (const tool_def& d : t.tools) {
    json f = {{"name", d.name}, {"parameters", json(d.parameters)}};
    if (!d.description.empty()) f["description"] = d.description;
    out.push_back({{"type", "function"}, {"function", std::move(f)}});
  }
  return out;
}

std::string native_call_id(const std::string& id, tool_format f) {
  const auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (f != tool_format::mistral || (id.size() == 9 && std::all_of(id.begin(), id.end(), alnum))) return id;
  // FNV-1a of the id, written as 9 alphanumerics: the same id maps the same way in the assistant
  // message and in the tool result that answers it.
  static constexpr char digits[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  std::string out(9, 'a');
  for (char& c : out) {
    c = digits[h % 62];
    h /= 62;
  }
  return out;
}

bool native_history_calls(const json& calls, tool_format f, json& out) {
  if (!calls.is_array()) return false;
  out = json::array();
  for (const json& c : calls) {
    if (!c.is_object()) return false;
    auto fn = c.find("function");
    if (fn == c.end() || !fn->is_object()) return false;
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string()) return false;
    json args = json::object();
    if (auto a = fn->find("arguments"); a != fn->end() && !a->is_null()) {
      args = a->is_string() ? parse_bounded(a->get_ref<const std::string&>()) : *a;
      if (args.is_discarded()) args = *a;  // not JSON text: shown as the string it is
    }
    std::string id;
    if (auto i = c.find("id"); i != c.end() && i->is_string()) id = i->get<std::string>();
    out.push_back({{"id", native_call_id(id, f)},
                   {"type", "function"},
                   {"function", {{"name", *name}, {"arguments", std::move(args)}}}});
  }
  return true;
}

std::string native_constraint_schema(const tool_request& t, tool_format f) {
  using ojson = nlohmann::ordered_json;
  const char* const args_key = f == tool_format::llama3 ? "parameters" : "arguments";
  const auto call = [&](const tool_def& d) {
    return ojson{{"type", "object"},
                 {"properties", {{"name", {{"const", d.name}}}, {args_key, d.parameters}}},
                 {"required", {"name", args_key}},
                 {"additionalProperties", false}};
  };
  ojson item;
  if (t.choice == tool_choice_mode::named) {
    for (const tool_def& d : t.tools)
      if (d.name == t.named) item = call(d);
  } else if (t.tools.size() == 1) {
    item = call(t.tools[0]);
  } else {
    ojson any = ojson::array();
    for (const tool_def& d : t.tools) any.push_back(call(d));
    item = ojson{{"anyOf", std::move(any)}};
  }
  const bool many = t.parallel && t.choice != tool_choice_mode::named;
  ojson tag;
  if (f == tool_format::mistral) {
    ojson list = {{"type", "array"}, {"items", std::move(item)}, {"minItems", 1}};
    if (!many) list["maxItems"] = 1;
    tag = {{"prefix", "[TOOL_CALLS] "}, {"schema", std::move(list)}, {"max", 1}};
  } else if (f == tool_format::hermes) {
    tag = {{"prefix", "<tool_call>\n"}, {"suffix", "\n</tool_call>"}, {"separator", "\n"}, {"schema", std::move(item)}};
  } else {
    tag = {{"separator", "; "}, {"schema", std::move(item)}};
  }
  tag["max"] = many && f != tool_format::mistral ? 16 : 1;
  // tools + response_format under auto: the calls or an answer in the format.
  if (t.choice == tool_choice_mode::automatic && !t.content_schema.is_null()) tag["or"] = t.content_schema;
  return ojson{{"x-troupe-tagged", std::move(tag)}}.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

tool_output parse_native_tool_output(tool_format f, std::string_view text, const std::vector<std::string>& known) {
  switch (f) {
    case tool_format::hermes:
      return parse_hermes(text, known);
    case tool_format::llama3:
      return parse_llama3(text, known);
    case tool_format::mistral:
      return parse_mistral(text, known);
    case tool_format::pythonic:
      return parse_pythonic_calls(text, known);
    case tool_format::generic:
      break;
  }
  return parse_tool_output(text, known);
}

}  // namespace troupe
