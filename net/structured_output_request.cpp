// Reading and compiling the structured-output fields of a request (see structured_output_request.h).
#include "net/structured_output_request.h"

#include <algorithm>

#include "net/text_codec.h"

namespace troupe {
namespace {

using json = nlohmann::json;
using kind = constraint_spec::kind;

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

// A schema given as an object/boolean, or (vLLM) as JSON text holding one.
std::optional<api_error> read_schema(const json& v, const std::string& param, std::string& out) {
  if (v.is_object() || v.is_boolean()) {
    out = v.dump();
    return std::nullopt;
  }
  if (v.is_string()) {
    json parsed = json::parse(v.get_ref<const std::string&>(), nullptr, false);
    if (parsed.is_discarded() || !(parsed.is_object() || parsed.is_boolean())) {
      return bad_request(param + " must be a JSON Schema (an object, or a string holding one)", param);
    }
    out = v.get<std::string>();  // as sent: keeps the client's property order (the grammar follows it)
    return std::nullopt;
  }
  return bad_request(param + " must be a JSON Schema (an object, or a string holding one)", param);
}

std::optional<api_error> read_text(const json& v, const std::string& param, std::string& out) {
  if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
    return bad_request(param + " must be a non-empty string", param);
  }
  out = v.get<std::string>();
  return std::nullopt;
}

std::optional<api_error> read_choices(const json& v, const std::string& param, std::string& out) {
  if (!v.is_array() || v.empty()) return bad_request(param + " must be a non-empty list of strings", param);
  for (const json& c : v) {
    if (!c.is_string()) return bad_request(param + " must be a non-empty list of strings", param);
  }
  out = v.dump();
  return std::nullopt;
}

// Records one constraint; a second one is a 400 naming both fields.
std::optional<api_error> set_once(structured_output_request& out, kind k, std::string text, std::string param) {
  if (!out.spec.empty()) {
    return bad_request("only one structured output may be asked for, got " + out.param + " and " + param, param);
  }
  out.spec = {k, std::move(text)};
  out.param = std::move(param);
  return std::nullopt;
}

std::optional<api_error> read_response_format(const json& body, structured_output_request& out) {
  const json* f = field(body, "response_format");
  if (!f) return std::nullopt;
  const char* const shape = "response_format must be {\"type\": \"text\" | \"json_object\" | \"json_schema\"}";
  if (!f->is_object()) return bad_request(shape, "response_format");
  const json* type = field(*f, "type");
  if (!type || !type->is_string()) return bad_request(shape, "response_format.type");
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "text") return std::nullopt;
  if (t == "json_object") return set_once(out, kind::json_object, {}, "response_format");
  if (t != "json_schema") {
    return bad_request("response_format.type must be text, json_object or json_schema, got '" + t + "'",
                       "response_format.type");
  }
  const json* js = field(*f, "json_schema");
  if (!js || !js->is_object()) {
    return bad_request("response_format.json_schema must be an object {\"name\", \"schema\", \"strict\"}",
                       "response_format.json_schema");
  }
  if (const json* name = field(*js, "name"); name && !name->is_string()) {
    return bad_request("response_format.json_schema.name must be a string", "response_format.json_schema.name");
  }
  const json* strict = field(*js, "strict");
  if (strict && !strict->is_boolean()) {
    return bad_request("response_format.json_schema.strict must be a boolean", "response_format.json_schema.strict");
  }
  const json* schema = field(*js, "schema");
  if (!schema) return set_once(out, kind::json_object, {}, "response_format");  // no schema: any JSON object
  std::string text;
  if (auto e = read_schema(*schema, "response_format.json_schema.schema", text)) return e;
  auto e = set_once(out, kind::json_schema, std::move(text), "response_format.json_schema.schema");
  // OpenAI's default is strict: false; then keywords the engine cannot enforce are ignored, not refused.
  if (!e) out.spec.strict = strict && strict->get<bool>();
  return e;
}

// One constraint field of structured_outputs or its guided_* alias.
std::optional<api_error> read_vllm_field(const json& v, const std::string& param, const std::string& what,
                                         structured_output_request& out) {
  std::string text;
  std::optional<api_error> e;
  if (what == "json") {
    if ((e = read_schema(v, param, text))) return e;
    return set_once(out, kind::json_schema, std::move(text), param);
  }
  if (what == "regex") {
    if ((e = read_text(v, param, text))) return e;
    return set_once(out, kind::regex, std::move(text), param);
  }
  if (what == "choice") {
    if ((e = read_choices(v, param, text))) return e;
    return set_once(out, kind::choice, std::move(text), param);
  }
  if ((e = read_text(v, param, text))) return e;  // grammar
  return set_once(out, kind::grammar, std::move(text), param);
}

std::optional<api_error> read_vllm(const json& body, structured_output_request& out) {
  static const char* const kinds[] = {"json", "regex", "choice", "grammar"};
  if (const json* so = field(body, "structured_outputs")) {
    if (!so->is_object()) return bad_request("structured_outputs must be an object", "structured_outputs");
    for (const char* k : kinds) {
      if (const json* v = field(*so, k)) {
        if (auto e = read_vllm_field(*v, std::string("structured_outputs.") + k, k, out)) return e;
      }
    }
    if (const json* jo = field(*so, "json_object")) {
      if (!jo->is_boolean()) {
        return bad_request("structured_outputs.json_object must be a boolean", "structured_outputs.json_object");
      }
      if (jo->get<bool>()) {
        if (auto e = set_once(out, kind::json_object, {}, "structured_outputs.json_object")) return e;
      }
    }
  }
  for (const char* k : kinds) {
    const std::string key = std::string("guided_") + k;
    if (const json* v = field(body, key.c_str())) {
      if (auto e = read_vllm_field(*v, key, k, out)) return e;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<api_error> read_structured_output(const json& body, structured_output_request& out) {
  if (auto e = read_response_format(body, out)) return e;
  return read_vllm(body, out);
}

void keep_client_order(const nlohmann::ordered_json& ordered, structured_output_request& so) {
  if (so.spec.type != kind::json_schema) return;
  const nlohmann::ordered_json* node = &ordered;
  size_t begin = 0;
  while (begin <= so.param.size()) {  // walk the dotted field name: response_format.json_schema.schema
    const size_t dot = std::min(so.param.find('.', begin), so.param.size());
    if (!node->is_object()) return;
    auto it = node->find(so.param.substr(begin, dot - begin));
    if (it == node->end()) return;
    node = &*it;
    begin = dot + 1;
  }
  if (node->is_object()) so.spec.text = node->dump();  // a string schema is kept as sent already
}

std::optional<api_error> compile_structured_output(const text_codec* codec, const structured_output_request& so,
                                                   generation_request& req) {
  if (so.spec.empty()) return std::nullopt;
  if (!codec) return bad_request("structured outputs need a tokenizer; this model has none", so.param, "unsupported");
  auto compiled = codec->compile(so.spec);
  if (!compiled.ok()) {
    const error& err = compiled.err();
    return bad_request(so.param + ": " + err.message, so.param,
                       err.code == errc::unsupported ? "unsupported" : std::string());
  }
  req.constraint = so.spec;
  req.compiled = std::move(compiled).value();
  return std::nullopt;
}

}  // namespace troupe
