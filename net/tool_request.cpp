// Tool fields and the generic tool format (see tool_request.h).
#include "net/tool_request.h"

#include <algorithm>

#include "net/json_guard.h"
#include "net/structured_output_request.h"

namespace troupe {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::optional<api_error> read_tool(const json& t, size_t i, tool_request& out) {
  const std::string at = "tools[" + std::to_string(i) + "]";
  if (!t.is_object()) return bad_request(at + " must be an object {\"type\": \"function\", \"function\": {...}}", "tools");
  const json* type = field(t, "type");
  if (!type || *type != "function") return bad_request(at + ".type must be \"function\"", "tools");
  const json* f = field(t, "function");
  if (!f || !f->is_object()) return bad_request(at + ".function must be an object", "tools");
  const json* name = field(*f, "name");
  if (!name || !name->is_string() || !valid_name(name->get<std::string>())) {
    return bad_request(at + ".function.name must be 1-64 letters, digits, _ or -", "tools");
  }
  tool_def d;
  d.name = name->get<std::string>();
  for (const tool_def& prev : out.tools) {
    if (prev.name == d.name) return bad_request(at + ": the function name '" + d.name + "' is used twice", "tools");
  }
  if (const json* desc = field(*f, "description")) {
    if (!desc->is_string()) return bad_request(at + ".function.description must be a string", "tools");
    d.description = desc->get<std::string>();
  }
  d.parameters = nlohmann::ordered_json{{"type", "object"}};
  if (const json* p = field(*f, "parameters")) {
    if (!p->is_object()) return bad_request(at + ".function.parameters must be a JSON Schema object", "tools");
    if (!p->empty()) d.parameters = nlohmann::ordered_json(*p);
  }
  out.tools.push_back(std::move(d));
  return std::nullopt;
}

std::optional<api_error> read_choice(const json& c, tool_request& out) {
  const char* const shape =
      "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}";
  if (c.is_string()) {
    const std::string& s = c.get_ref<const std::string&>();
    if (s == "none") out.choice = tool_choice_mode::none;
    else if (s == "auto") out.choice = tool_choice_mode::automatic;
    else if (s == "required") out.choice = tool_choice_mode::required;
    else return bad_request(shape, "tool_choice");
  } else if (c.is_object()) {
    const json* type = field(c, "type");
    const json* f = field(c, "function");
    const json* name = f && f->is_object() ? field(*f, "name") : nullptr;
    if (!type || *type != "function" || !name || !name->is_string()) return bad_request(shape, "tool_choice");
    out.choice = tool_choice_mode::named;
    out.named = name->get<std::string>();
  } else {
    return bad_request(shape, "tool_choice");
  }
  if (out.choice != tool_choice_mode::none && out.tools.empty()) {
    return bad_request("tool_choice asks for tool calls but the request has no tools", "tool_choice");
  }
  if (out.choice == tool_choice_mode::named) {
    const auto& ts = out.tools;
    if (std::none_of(ts.begin(), ts.end(), [&](const tool_def& d) { return d.name == out.named; })) {
      return bad_request("tool_choice names the function '" + out.named.substr(0, 64) + "', which is not in tools",
                         "tool_choice");
    }
  }
  return std::nullopt;
}

ojson call_schema(const tool_def& d) {
  return ojson{{"type", "object"},
              {"properties", {{"name", {{"const", d.name}}}, {"arguments", d.parameters}}},
              {"required", {"name", "arguments"}},
              {"additionalProperties", false}};
}

}  // namespace

std::vector<std::string> tool_request::names() const {
  std::vector<std::string> n;
  for (const tool_def& d : tools) n.push_back(d.name);
  return n;
}

void keep_client_order(const ojson& ordered, tool_request& t) {
  auto ts = ordered.find("tools");
  if (ts == ordered.end() || !ts->is_array() || ts->size() != t.tools.size()) return;
  for (size_t i = 0; i < t.tools.size(); ++i) {
    const ojson& tool = (*ts)[i];
    if (!tool.is_object()) continue;
    auto f = tool.find("function");
    if (f == tool.end() || !f->is_object()) continue;
    auto p = f->find("parameters");
    if (p != f->end() && p->is_object() && !p->empty()) t.tools[i].parameters = *p;
  }
}

std::optional<api_error> read_tools(const json& body, tool_request& out) {
  if (const json* ts = field(body, "tools")) {
    if (!ts->is_array()) return bad_request("tools must be a list of functions", "tools");
    if (ts->size() > 128) return bad_request("tools holds at most 128 functions", "tools");
    for (size_t i = 0; i < ts->size(); ++i) {
      if (auto e = read_tool((*ts)[i], i, out)) return e;
    }
  }
  if (const json* p = field(body, "parallel_tool_calls")) {
    if (!p->is_boolean()) return bad_request("parallel_tool_calls must be a boolean", "parallel_tool_calls");
    out.parallel = p->get<bool>();
  }
  out.choice = out.tools.empty() ? tool_choice_mode::none : tool_choice_mode::automatic;
  if (const json* c = field(body, "tool_choice")) return read_choice(*c, out);
  return std::nullopt;
}

ojson tool_envelope_schema(const tool_request& t) {
  ojson items;
  if (t.choice == tool_choice_mode::named) {
    for (const tool_def& d : t.tools)
      if (d.name == t.named) items = call_schema(d);
  } else if (t.tools.size() == 1) {
    items = call_schema(t.tools[0]);
  } else {
    ojson any = ojson::array();
    for (const tool_def& d : t.tools) any.push_back(call_schema(d));
    items = ojson{{"anyOf", std::move(any)}};
  }
  ojson calls = {{"type", "array"}, {"items", std::move(items)}, {"minItems", 1}};
  if (!t.parallel) calls["maxItems"] = 1;
  ojson envelope = {{"type", "object"},
                   {"properties", {{"tool_calls", std::move(calls)}}},
                   {"required", {"tool_calls"}},
                   {"additionalProperties", false}};
  if (t.choice != tool_choice_mode::automatic) return envelope;
  ojson format = t.content_schema.is_null() ? ojson{{"type", "string"}} : t.content_schema;
  ojson root = ojson::object();
  for (const char* defs : {"$defs", "definitions"}) {  // "#/$defs/..." refs resolve at the envelope's root
    if (format.is_object() && format.contains(defs)) {
      root[defs] = format[defs];
      format.erase(defs);
    }
  }
  ojson content = {{"type", "object"},
                   {"properties", {{"content", std::move(format)}}},
                   {"required", {"content"}},
                   {"additionalProperties", false}};
  root["anyOf"] = {std::move(envelope), std::move(content)};
  return root;
}

std::optional<api_error> take_response_format(structured_output_request& so, tool_request& t) {
  using kind = constraint_spec::kind;
  if (so.spec.empty() || !t.active()) return std::nullopt;
  if (so.spec.type != kind::json_object && so.spec.type != kind::json_schema) {
    return api_error{400, so.param + " cannot be combined with tools (a JSON response_format can; or tool_choice \"none\")",
                     "invalid_request_error", so.param, "unsupported"};
  }
  t.content_schema = ojson{{"type", "object"}};
  if (so.spec.type == kind::json_schema) {
    t.content_schema = ojson::parse(so.spec.text, nullptr, false);
    if (t.content_schema.is_discarded() || !t.content_schema.is_object()) {
      return bad_request(so.param + " must be a JSON Schema object", so.param);
    }
  }
  t.content_strict = so.spec.type != kind::json_schema || so.spec.strict;
  so = {};
  return std::nullopt;
}

std::string tool_system_prompt(const tool_request& t) {
  std::string s = "You can call the following functions. Each one's arguments follow the JSON Schema given.\n";
  for (const tool_def& d : t.tools) {
    s += "- " + d.name;
    if (!d.description.empty()) s += ": " + d.description;
    s += "\n  arguments: " + d.parameters.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n";
  }
  s += "\nAnswer with one JSON object and nothing else. To call functions: "
       "{\"tool_calls\": [{\"name\": \"<function name>\", \"arguments\": {<arguments>}}]}";
  s += t.parallel ? " (one entry per call).\n" : " (exactly one call).\n";
  switch (t.choice) {
    case tool_choice_mode::automatic:
      if (t.content_schema.is_null()) {
        s += "To answer without calling a function: {\"content\": \"<your answer>\"}.\n";
      } else {
        s += "To answer without calling a function: {\"content\": <your answer as JSON following this schema: " +
             t.content_schema.dump(-1, ' ', false, ojson::error_handler_t::replace) + ">}.\n";
      }
      break;
    case tool_choice_mode::required:
      s += "You must call at least one function.\n";
      break;
    case tool_choice_mode::named:
      s += "You must call the function " + t.named + ".\n";
      break;
    case tool_choice_mode::none:
      break;
  }
  return s;
}

void add_tool_prompt(const tool_request& t, json& messages) {
  const std::string prompt = tool_system_prompt(t);
  if (!messages.empty() && messages[0].value("role", "") == "system") {
    std::string c = messages[0].value("content", "");
    messages[0]["content"] = c.empty() ? prompt : c + "\n\n" + prompt;
    return;
  }
  messages.insert(messages.begin(), json{{"role", "system"}, {"content", prompt}});
}

std::optional<api_error> render_tool_calls_message(const json& msg, std::string& content) {
  const json* calls = field(msg, "tool_calls");
  if (!calls) return std::nullopt;
  const char* const shape =
      "an assistant message's tool_calls must be a list of {\"id\", \"type\": \"function\", \"function\": "
      "{\"name\", \"arguments\"}}";
  if (!calls->is_array()) return bad_request(shape, "messages");
  ojson envelope_calls = ojson::array();
  for (const json& c : *calls) {
    const json* f = c.is_object() ? field(c, "function") : nullptr;
    const json* name = f && f->is_object() ? field(*f, "name") : nullptr;
    if (!name || !name->is_string()) return bad_request(shape, "messages");
    ojson args = ojson::object();
    if (const json* a = field(*f, "arguments")) {
      const bool shallow = a->is_string() && json_nesting_depth(a->get_ref<const std::string&>(), 64) <= 64;
      if (shallow) {  // OpenAI sends arguments as JSON text; shown to the model as the object
        args = ojson::parse(a->get<std::string>(), nullptr, false);
        if (args.is_discarded()) args = ojson(*a);
      } else {
        args = ojson(*a);
      }
    }
    envelope_calls.push_back({{"name", name->get<std::string>()}, {"arguments", std::move(args)}});
  }
  if (envelope_calls.empty()) return std::nullopt;
  const std::string env =
      ojson{{"tool_calls", std::move(envelope_calls)}}.dump(-1, ' ', false, ojson::error_handler_t::replace);
  content = content.empty() ? env : content + "\n" + env;
  return std::nullopt;
}

}  // namespace troupe
