// Responses API request parsing and its mapping onto a chat-completions request (see responses_api.h).
// Shapes follow OpenAI's Responses reference: input items, function tools, text.format.
#include "net/responses_api.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>

namespace troupe {
namespace {

using json = nlohmann::json;
using maybe_error = std::optional<api_error>;

constexpr size_t k_max_input_items = 4096;
constexpr size_t k_max_metadata_pairs = 16;
constexpr size_t k_max_metadata_key = 64;
constexpr size_t k_max_metadata_value = 512;
constexpr size_t k_max_id_bytes = 256;

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

api_error unsupported(const std::string& what, const std::string& param) {
  return bad_request(what + " is not supported", param, "unsupported");
}

maybe_error read_string(const json& obj, const char* key, const std::string& param, std::string& out,
                        bool required) {
  const json* v = field(obj, key);
  if (!v) {
    if (required) return bad_request(param + " is required", param);
    return std::nullopt;
  }
  if (!v->is_string()) return bad_request(param + " must be a string", param);
  out = v->get<std::string>();
  return std::nullopt;
}

// Content of a message item: a string, or parts of type input_text / output_text (joined).
maybe_error read_content(const json& item, const std::string& param, std::string& text) {
  const json* c = field(item, "content");
  if (!c) return bad_request(param + ".content is required", param + ".content");
  if (c->is_string()) {
    text = c->get<std::string>();
    return std::nullopt;
  }
  if (!c->is_array()) return bad_request(param + ".content must be a string or a list of parts", param + ".content");
  text.clear();
  for (const json& part : *c) {
    const json* type = part.is_object() ? field(part, "type") : nullptr;
    if (!type || !type->is_string()) return bad_request("each content part needs a string type", param + ".content");
    const std::string& t = type->get_ref<const std::string&>();
    if (t != "input_text" && t != "output_text" && t != "text") {
      return unsupported("content part type '" + t.substr(0, 64) + "' (only text parts)", param + ".content");
    }
    const json* s = field(part, "text");
    if (!s || !s->is_string()) return bad_request("a text part needs a string text", param + ".content");
    text += s->get<std::string>();
  }
  return std::nullopt;
}

maybe_error normalize_item(const json& in, size_t index, json& out) {
  const std::string param = "input[" + std::to_string(index) + "]";
  if (!in.is_object()) return bad_request(param + " must be an object", param);
  std::string type = "message";  // EasyInputMessage has no type
  if (auto e = read_string(in, "type", param + ".type", type, false)) return e;
  std::string id;
  if (auto e = read_string(in, "id", param + ".id", id, false)) return e;
  if (id.size() > k_max_id_bytes) return bad_request(param + ".id is too long", param + ".id");
  if (type == "message") {
    std::string role, text;
    if (auto e = read_string(in, "role", param + ".role", role, true)) return e;
    if (role != "user" && role != "assistant" && role != "system" && role != "developer") {
      return bad_request(param + ".role must be user, assistant, system or developer", param + ".role");
    }
    if (auto e = read_content(in, param, text)) return e;
    const char* part_type = role == "assistant" ? "output_text" : "input_text";
    out = {{"type", "message"},
           {"id", id.empty() ? new_response_object_id("msg_") : id},
           {"role", role},
           {"content", json::array({{{"type", part_type}, {"text", text}}})}};
    if (role == "assistant") out["content"][0]["annotations"] = json::array();
    out["status"] = "completed";
    return std::nullopt;
  }
  if (type == "function_call") {
    std::string call_id, name, arguments;
    if (auto e = read_string(in, "call_id", param + ".call_id", call_id, true)) return e;
    if (auto e = read_string(in, "name", param + ".name", name, true)) return e;
    if (auto e = read_string(in, "arguments", param + ".arguments", arguments, true)) return e;
    out = {{"type", "function_call"}, {"id", id.empty() ? new_response_object_id("fc_") : id},
           {"call_id", call_id}, {"name", name}, {"arguments", arguments}, {"status", "completed"}};
    return std::nullopt;
  }
  if (type == "function_call_output") {
    std::string call_id, output;
    if (auto e = read_string(in, "call_id", param + ".call_id", call_id, true)) return e;
    const json* o = field(in, "output");
    if (!o) return bad_request(param + ".output is required", param + ".output");
    if (o->is_string()) {
      output = o->get<std::string>();
    } else {
      json wrapped = {{"content", *o}};
      if (auto e = read_content(wrapped, param + ".output", output)) return e;
    }
    out = {{"type", "function_call_output"}, {"id", id.empty() ? new_response_object_id("fco_") : id},
           {"call_id", call_id}, {"output", output}, {"status", "completed"}};
    return std::nullopt;
  }
  return unsupported("input item type '" + type.substr(0, 64) + "'", param + ".type");
}

maybe_error read_input(const json& body, responses_params& p) {
  const json* in = field(body, "input");
  if (!in) return bad_request("input is required", "input");
  if (in->is_string()) {
    p.input_items = json::array({{{"type", "message"},
                                  {"id", new_response_object_id("msg_")},
                                  {"role", "user"},
                                  {"content", json::array({{{"type", "input_text"}, {"text", *in}}})},
                                  {"status", "completed"}}});
    return std::nullopt;
  }
  if (!in->is_array()) return bad_request("input must be a string or a list of items", "input");
  if (in->empty()) return bad_request("input must not be empty", "input");
  if (in->size() > k_max_input_items) {
    return bad_request("input holds at most " + std::to_string(k_max_input_items) + " items", "input");
  }
  p.input_items = json::array();
  for (size_t i = 0; i < in->size(); ++i) {
    json item;
    if (auto e = normalize_item((*in)[i], i, item)) return e;
    p.input_items.push_back(std::move(item));
  }
  return std::nullopt;
}

maybe_error read_metadata(const json& body, responses_params& p) {
  const json* m = field(body, "metadata");
  if (!m) return std::nullopt;
  if (!m->is_object()) return bad_request("metadata must be an object of strings", "metadata");
  if (m->size() > k_max_metadata_pairs) return bad_request("metadata holds at most 16 pairs", "metadata");
  for (auto it = m->begin(); it != m->end(); ++it) {
    if (it.key().size() > k_max_metadata_key) return bad_request("metadata keys are at most 64 characters", "metadata");
    if (!it.value().is_string() || it.value().get_ref<const std::string&>().size() > k_max_metadata_value) {
      return bad_request("metadata values must be strings of at most 512 characters", "metadata");
    }
  }
  p.metadata = *m;
  return std::nullopt;
}

// Function tools in the Responses shape ({"type": "function", "name", "parameters", ...}) become
// chat tools ({"type": "function", "function": {...}}); tool_choice likewise.
maybe_error read_tools(const json& body, responses_params& p) {
  if (const json* t = field(body, "tools")) {
    if (!t->is_array()) return bad_request("tools must be a list", "tools");
    json chat_tools = json::array();
    for (size_t i = 0; i < t->size(); ++i) {
      const json& tool = (*t)[i];
      const std::string param = "tools[" + std::to_string(i) + "]";
      std::string type, name;
      if (!tool.is_object()) return bad_request(param + " must be an object", param);
      if (auto e = read_string(tool, "type", param + ".type", type, true)) return e;
      if (type != "function") return unsupported("tool type '" + type.substr(0, 64) + "'", param + ".type");
      if (auto e = read_string(tool, "name", param + ".name", name, true)) return e;
      if (name.empty()) return bad_request(param + ".name must not be empty", param + ".name");
      json fn = {{"name", name}};
      for (const char* key : {"description", "parameters", "strict"}) {
        if (const json* v = field(tool, key)) fn[key] = *v;
      }
      if (fn.contains("parameters") && !fn["parameters"].is_object()) {
        return bad_request(param + ".parameters must be a JSON schema object", param + ".parameters");
      }
      chat_tools.push_back({{"type", "function"}, {"function", std::move(fn)}});
    }
    p.tools = *t;
    if (!chat_tools.empty()) p.chat_fields["tools"] = std::move(chat_tools);
  }
  if (const json* c = field(body, "tool_choice")) {
    if (c->is_string()) {
      if (*c != "none" && *c != "auto" && *c != "required") {
        return bad_request("tool_choice must be none, auto, required or a function", "tool_choice");
      }
      if (*c != "auto") p.chat_fields["tool_choice"] = *c;
    } else if (c->is_object()) {
      std::string type, name;
      if (auto e = read_string(*c, "type", "tool_choice.type", type, true)) return e;
      if (type != "function") return unsupported("tool_choice type '" + type.substr(0, 64) + "'", "tool_choice");
      if (auto e = read_string(*c, "name", "tool_choice.name", name, true)) return e;
      p.chat_fields["tool_choice"] = {{"type", "function"}, {"function", {{"name", name}}}};
    } else {
      return bad_request("tool_choice must be a string or an object", "tool_choice");
    }
    p.tool_choice = *c;
  }
  if (const json* v = field(body, "parallel_tool_calls")) {
    if (!v->is_boolean()) return bad_request("parallel_tool_calls must be a boolean", "parallel_tool_calls");
    p.parallel_tool_calls = v->get<bool>();
    p.chat_fields["parallel_tool_calls"] = *v;
  }
  return std::nullopt;
}

// text.format: text (the default), json_object, or json_schema -> the chat response_format.
maybe_error read_text_format(const json& body, responses_params& p) {
  const json* t = field(body, "text");
  if (!t) return std::nullopt;
  if (!t->is_object()) return bad_request("text must be an object", "text");
  const json* f = field(*t, "format");
  if (!f) return std::nullopt;
  std::string type;
  if (!f->is_object()) return bad_request("text.format must be an object", "text.format");
  if (auto e = read_string(*f, "type", "text.format.type", type, true)) return e;
  if (type == "json_object") {
    p.chat_fields["response_format"] = {{"type", "json_object"}};
  } else if (type == "json_schema") {
    std::string name;
    if (auto e = read_string(*f, "name", "text.format.name", name, true)) return e;
    const json* schema = field(*f, "schema");
    if (!schema || !schema->is_object()) return bad_request("text.format.schema must be an object", "text.format.schema");
    json js = {{"name", name}, {"schema", *schema}};
    for (const char* key : {"description", "strict"}) {
      if (const json* v = field(*f, key)) js[key] = *v;
    }
    p.chat_fields["response_format"] = {{"type", "json_schema"}, {"json_schema", std::move(js)}};
  } else if (type != "text") {
    return bad_request("text.format.type must be text, json_object or json_schema", "text.format.type");
  }
  p.text = {{"format", *f}};
  return std::nullopt;
}

maybe_error read_sampling(const json& body, responses_params& p) {
  for (const char* key : {"temperature", "top_p"}) {
    const json* v = field(body, key);
    if (!v) continue;
    if (!v->is_number()) return bad_request(std::string(key) + " must be a number", key);
    p.chat_fields[key] = *v;  // ranges are checked by the chat parser, which names the field
    (std::string(key) == "temperature" ? p.temperature : p.top_p) = *v;
  }
  // troupe's extension, as vLLM's: a seed makes sampling reproducible (the chat parser reads it).
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) return bad_request("seed must be an integer", "seed");
    p.chat_fields["seed"] = *s;
  }
  if (const json* m = field(body, "max_output_tokens")) {
    if (!m->is_number_integer() || (m->is_number_integer() && !m->is_number_unsigned() && m->get<int64_t>() < 1)) {
      return bad_request("max_output_tokens must be a positive integer", "max_output_tokens");
    }
    p.chat_fields["max_completion_tokens"] = *m;
    p.max_output_tokens = *m;
  }
  return std::nullopt;
}

// Fields OpenAI defines that troupe does not serve: refused by name, never ignored.
maybe_error reject_unsupported(const json& body) {
  for (const char* key : {"conversation", "prompt", "background", "reasoning"}) {
    const json* v = field(body, key);
    if (v && !(v->is_boolean() && !v->get<bool>())) return unsupported(key, key);
  }
  if (const json* inc = field(body, "include"); inc && !(inc->is_array() && inc->empty())) {
    return unsupported("include", "include");
  }
  return std::nullopt;
}

// Chat errors name chat fields: give them the Responses names.
api_error rename_chat_fields(api_error e) {
  auto swap = [&](const std::string& from, const std::string& to) {
    if (e.param == from) e.param = to;
    for (size_t at = e.message.find(from); at != std::string::npos; at = e.message.find(from, at + to.size())) {
      e.message.replace(at, from.size(), to);
    }
  };
  swap("max_completion_tokens", "max_output_tokens");
  swap("response_format", "text.format");
  swap("messages", "input");
  return e;
}

// The chat fields whose order matters, rebuilt from the raw text in the client's order, in the shape
// the chat parser's keep_client_order reads: response_format.json_schema.schema, tools[i].function
// .parameters. Only when a schema or tools ask for it (a second parse costs).
void keep_client_order(std::string_view raw, responses_params& p) {
  using ojson = nlohmann::ordered_json;
  const json* rf = field(p.chat_fields, "response_format");
  const bool schema = rf && rf->value("type", "") == "json_schema";
  const bool tools = p.chat_fields.contains("tools");
  if (raw.empty() || (!schema && !tools)) return;
  const ojson body = ojson::parse(raw, nullptr, false);  // its depth was bounded by the first parse
  if (!body.is_object()) return;
  ojson out = ojson::object();
  if (auto t = body.find("text"); schema && t != body.end() && t->is_object()) {
    if (auto f = t->find("format"); f != t->end() && f->is_object()) {
      if (auto s = f->find("schema"); s != f->end()) out["response_format"]["json_schema"]["schema"] = *s;
    }
  }
  if (auto ts = body.find("tools"); tools && ts != body.end() && ts->is_array()) {
    ojson list = ojson::array();
    for (const ojson& tool : *ts) {
      ojson fn = ojson::object();
      if (tool.is_object()) {
        if (auto params = tool.find("parameters"); params != tool.end()) fn["parameters"] = *params;
      }
      list.push_back(ojson{{"function", std::move(fn)}});
    }
    out["tools"] = std::move(list);
  }
  p.ordered_chat_fields = out.dump();
}

}  // namespace

std::string new_response_object_id(const char* prefix) {
  // Ids name stored data that other API keys must not guess: 128 random bits.
  static thread_local std::mt19937_64 rng{std::random_device{}() ^
                                          static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

api_result<responses_params> parse_responses_body(const json& body, bool websocket, std::string_view raw) {
  try {
    if (!body.is_object()) return bad_request("the request body must be a JSON object");
    responses_params p;
    if (const json* m = field(body, "model"); m && !m->is_string()) return bad_request("model must be a string", "model");
    if (const json* i = field(body, "instructions")) {
      if (!i->is_string()) return bad_request("instructions must be a string", "instructions");
      p.instructions = *i;
    }
    if (auto e = read_string(body, "previous_response_id", "previous_response_id", p.previous_response_id, false)) return *e;
    if (p.previous_response_id.size() > k_max_id_bytes) {
      return bad_request("previous_response_id is too long", "previous_response_id");
    }
    for (const char* key : {"store", "stream"}) {
      const json* v = field(body, key);
      if (v && !v->is_boolean()) return bad_request(std::string(key) + " must be a boolean", key);
    }
    if (const json* s = field(body, "store")) p.store = s->get<bool>();
    if (const json* s = field(body, "stream")) p.stream = s->get<bool>();
    if (websocket) p.stream = true;
    if (const json* t = field(body, "truncation")) {
      if (!t->is_string() || (*t != "auto" && *t != "disabled")) {
        return bad_request("truncation must be auto or disabled", "truncation");
      }
      p.truncation = t->get<std::string>();
    }
    maybe_error e;
    if ((e = reject_unsupported(body))) return *e;
    if ((e = read_input(body, p))) return *e;
    if ((e = read_metadata(body, p))) return *e;
    if ((e = read_sampling(body, p))) return *e;
    if ((e = read_tools(body, p))) return *e;
    if ((e = read_text_format(body, p))) return *e;
    keep_client_order(raw, p);
    return p;
  } catch (const std::exception& ex) {
    return bad_request(std::string("bad request: ") + ex.what());
  }
}

json items_to_messages(const json& items) {
  json out = json::array();
  for (const json& item : items) {
    const std::string type = item.value("type", "message");
    if (type == "message") {
      std::string role = item.value("role", "user");
      if (role == "developer") role = "system";
      std::string text;
      if (item.contains("content") && item["content"].is_array()) {
        for (const json& part : item["content"]) text += part.value("text", "");
      }
      out.push_back({{"role", role}, {"content", text}});
    } else if (type == "function_call") {
      json call = {{"id", item.value("call_id", "")}, {"type", "function"},
                   {"function", {{"name", item.value("name", "")}, {"arguments", item.value("arguments", "")}}}};
      // Consecutive calls belong to one assistant turn.
      if (!out.empty() && out.back().value("role", "") == "assistant" && out.back().contains("tool_calls")) {
        out.back()["tool_calls"].push_back(std::move(call));
      } else {
        out.push_back({{"role", "assistant"}, {"content", ""}, {"tool_calls", json::array({std::move(call)})}});
      }
    } else if (type == "function_call_output") {
      out.push_back({{"role", "tool"}, {"tool_call_id", item.value("call_id", "")}, {"content", item.value("output", "")}});
    }
  }
  return out;
}

namespace {

// The history index of the assistant message that made tool call `id`, or history.size().
size_t call_index(const json& history, const std::string& id) {
  for (size_t i = 0; i < history.size(); ++i) {
    const json& m = history[i];
    if (m.value("role", "") != "assistant" || !m.contains("tool_calls") || !m["tool_calls"].is_array()) continue;
    for (const json& c : m["tool_calls"])
      if (c.is_object() && c.value("id", "") == id) return i;
  }
  return history.size();
}

// Where truncation may cut at most: before the first call that the input answers.
size_t first_answered_call(const json& history, const json& input) {
  size_t at = history.size();
  for (const json& m : input)
    if (m.value("role", "") == "tool") at = std::min(at, call_index(history, m.value("tool_call_id", "")));
  return at;
}

// The next cut after `skip`: one more message, and the tool outputs that answered it with it, so a
// function_call_output never outlives its function_call.
size_t next_cut(const json& history, size_t skip) {
  ++skip;
  while (skip < history.size() && history[skip].value("role", "") == "tool") ++skip;
  return skip;
}

}  // namespace

api_result<openai_request> build_responses_generation(const responses_params& p, const json& history,
                                                      const api_context& ctx, size_t* num_history_used) {
  try {
    const json input = items_to_messages(p.input_items);
    const size_t max_skip = first_answered_call(history, input);
    size_t skip = 0;
    while (true) {
      json body = p.chat_fields;
      json messages = json::array();
      if (p.instructions.is_string()) messages.push_back({{"role", "system"}, {"content", p.instructions}});
      for (size_t i = skip; i < history.size(); ++i) messages.push_back(history[i]);
      for (const json& m : input) messages.push_back(m);
      body["messages"] = std::move(messages);
      auto r = parse_openai_request(api_kind::chat, body, ctx, p.ordered_chat_fields);
      if (!is_error(r)) {
        std::get<openai_request>(r).stream = p.stream;
        if (num_history_used) *num_history_used = history.size() - skip;
        return r;
      }
      api_error e = std::get<api_error>(r);
      if (e.code == "context_too_long" && p.truncation == "auto" && next_cut(history, skip) <= max_skip) {
        skip = next_cut(history, skip);  // drop the oldest message (and its tool outputs) and try again
        continue;
      }
      return rename_chat_fields(std::move(e));
    }
  } catch (const std::exception& ex) {
    return bad_request(std::string("bad request: ") + ex.what());
  }
}

}  // namespace troupe
