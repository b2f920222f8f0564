// OpenAI request mapping and validation (see openai_api.h). Ranges follow the OpenAI API where it
// has one and vLLM otherwise; the runtime validates again, this layer names the field.
#include "net/openai_api.h"

#include <cmath>

#include "net/structured_output_request.h"
#include "net/openai_params.h"
#include "net/pythonic_calls.h"
#include "net/tool_request.h"
#include <optional>

namespace troupe {

using namespace api_fields;

namespace {

maybe_error encode_text(const std::string& text, const api_context& ctx, bool add_special,
                        bool parse_special, const char* param, std::vector<int32_t>& out) {
  if (!ctx.codec || !ctx.codec->has_tokenizer()) {
    return bad_request("this model has no tokenizer: send " + std::string(param) + " as token ids",
                       param, "unsupported");
  }
  auto ids = ctx.codec->encode(text, add_special, parse_special);
  if (!ids.ok()) return bad_request(ids.err().message, param);
  out = std::move(ids).value();
  return std::nullopt;
}

const char* const k_prompt_shape =
    "prompt must be a string, a list of token ids, or a list holding one string or one list of token ids";

maybe_error encode_prompt_text(const json& s, const api_context& ctx, bool add_special,
                               std::vector<int32_t>& out) {
  if (s.get_ref<const std::string&>().empty()) return bad_request("prompt must not be empty", "prompt");
  return encode_text(s.get_ref<const std::string&>(), ctx, add_special, false, "prompt", out);
}

// prompt: "text" | [ids] | ["text"] | [[ids]] (one prompt per request). Nothing is copied and
// nothing deeper is unwrapped: [[[1]]] or ["a", "b"] is a 400, never quietly taken as another shape.
maybe_error read_prompt(const json& body, const api_context& ctx, bool add_special,
                        std::vector<int32_t>& out) {
  const json* p = field(body, "prompt");
  if (!p) return bad_request("prompt is required", "prompt");
  if (p->is_string()) return encode_prompt_text(*p, ctx, add_special, out);
  if (!p->is_array()) return bad_request(k_prompt_shape, "prompt");
  if (p->empty()) return bad_request("prompt must not be empty", "prompt");
  const json& first = (*p)[0];
  if (first.is_string() || first.is_array()) {
    if (p->size() > 1) {
      return bad_request("batched prompts are not supported: send one prompt per request", "prompt");
    }
    if (first.is_string()) return encode_prompt_text(first, ctx, add_special, out);
    if (first.empty()) return bad_request("prompt must not be empty", "prompt");
    for (const json& v : first) {
      if (!v.is_number_integer()) return bad_request(k_prompt_shape, "prompt");
    }
    return read_ids(first, ctx, "prompt", out);
  }
  for (const json& v : *p) {
    if (v.is_string() || v.is_array()) {
      return bad_request("batched prompts are not supported: send one prompt per request", "prompt");
    }
  }
  return read_ids(*p, ctx, "prompt", out);
}

// messages -> [{"role", "content": string}], text parts joined.
// `syntax`: generic renders an assistant's tool_calls as envelope text; a native format keeps them
// OpenAI-shaped for the template (arguments as objects, ids as the template wants them).
maybe_error normalize_messages(const json& body, json& out, tool_format syntax = tool_format::generic) {
  const json* m = field(body, "messages");
  if (!m) return bad_request("messages is required", "messages");
  if (!m->is_array() || m->empty()) return bad_request("messages must be a non-empty list", "messages");
  out = json::array();
  for (const json& msg : *m) {
    if (!msg.is_object()) return bad_request("each message must be an object", "messages");
    const json* role = field(msg, "role");
    if (!role || !role->is_string()) return bad_request("each message needs a string role", "messages");
    std::string content;
    const json* c = field(msg, "content");
    if (c && c->is_string()) {
      content = c->get<std::string>();
    } else if (c && c->is_array()) {
      for (const json& part : *c) {
        const json* type = part.is_object() ? field(part, "type") : nullptr;
        const json* text = part.is_object() ? field(part, "text") : nullptr;
        if (!type || *type != "text" || !text || !text->is_string()) {
          return bad_request("only text content parts are supported", "messages");
        }
        content += text->get<std::string>();
      }
    } else if (c) {
      return bad_request("message content must be a string or a list of parts", "messages");
    }
    json native_calls;
    if (*role == "assistant" && syntax == tool_format::generic) {
      if (auto e = render_tool_calls_message(msg, content)) return e;
    } else if (const json* calls = field(msg, "tool_calls"); calls && *role == "assistant") {
      if (!native_history_calls(*calls, syntax, native_calls)) {
        return bad_request("an assistant message's tool_calls must be a list of {\"id\", \"type\": \"function\", "
                           "\"function\": {\"name\", \"arguments\"}}",
                           "messages");
      }
    }
    json n = {{"role", *role}, {"content", content}};
    if (!native_calls.empty()) n["tool_calls"] = std::move(native_calls);
    if (const json* name = field(msg, "name"); name && name->is_string()) n["name"] = *name;
    if (const json* id = field(msg, "tool_call_id"); id && id->is_string()) {
      n["tool_call_id"] = native_call_id(id->get<std::string>(), syntax);
    }
    out.push_back(std::move(n));
  }
  return std::nullopt;
}

tool_format native_tool_syntax(const api_context& ctx, const tool_request& tools) {
  if (!ctx.codec || !ctx.codec->has_chat_template()) return tool_format::generic;
  return detect_tool_format(ctx.codec->chat_template_source());
}

maybe_error read_chat_prompt(const json& body, const api_context& ctx, const tool_request& tools,
                             std::vector<int32_t>& out, std::string* rendered = nullptr) {
  json messages;
  // Tools go through the model's own template when it has a native format (required and named
  // choices then constrain the answer to that format's calls).
  const tool_format syntax = native_tool_syntax(ctx, tools);
  if (auto e = normalize_messages(body, messages, syntax)) return e;
  if (tools.active() && syntax == tool_format::generic) add_tool_prompt(tools, messages);
  bool add_generation_prompt = true;
  if (auto e = read_bool(body, "add_generation_prompt", add_generation_prompt)) return e;
  // Passed by reference, never copied: its depth is bounded at parse time (json_guard.h).
  static const json no_kwargs = json::object();
  const json* extra = field(body, "chat_template_kwargs");
  if (extra && !extra->is_object()) {
    return bad_request("chat_template_kwargs must be an object", "chat_template_kwargs");
  }
  if (!ctx.codec || !ctx.codec->has_chat_template()) {
    return bad_request("this model has no chat template: use /v1/completions", "messages", "unsupported");
  }
  json with_tools;
  if (tools.active() && syntax != tool_format::generic) {
    with_tools = extra ? *extra : json::object();
    with_tools["tools"] = template_tools(tools);
    extra = &with_tools;
  }
  auto text = ctx.codec->render_chat(messages, add_generation_prompt, extra ? *extra : no_kwargs);
  if (!text.ok()) return bad_request(text.err().message, "messages");
  if (rendered) *rendered = text.value();
  return encode_text(text.value(), ctx, false, true, "messages", out);
}

// The reasoning parser for one chat request: on when the server's is, unless the request turns
// thinking off (chat_template_kwargs.enable_thinking=false: the template closed an empty span in
// the prompt, the answer is plain content) or asks for no split (SGLang's separate_reasoning).
maybe_error read_reasoning(const json& body, const api_context& ctx, const std::string& prompt, openai_request& r) {
  bool separate = true;
  if (auto e = read_bool(body, "separate_reasoning", separate)) return e;
  bool thinking = true;
  if (const json* kw = field(body, "chat_template_kwargs"))
    if (auto it = kw->find("enable_thinking"); it != kw->end() && it->is_boolean()) thinking = it->get<bool>();
  r.separate_reasoning = ctx.reasoning && separate && thinking;
  // A prompt that ends in an opened span (DeepSeek-R1's templates) makes the answer start inside it.
  const size_t end = prompt.find_last_not_of(" \n");
  const size_t open = prompt.rfind("<think>");
  r.reasoning_starts_open = r.separate_reasoning && open != std::string::npos && end != std::string::npos &&
                            open + 6 == end && prompt.find("</think>", open) == std::string::npos;
  return std::nullopt;
}


// Tools are a chat feature; the legacy functions/function_call fields are not implemented. A request
// that asks for them is a 400, never served as prose. Only the values that mean "the default" pass.
maybe_error reject_tool_fields(const json& body, api_kind kind) {
  const char* const no = " is not supported (use tools on /v1/chat/completions)";
  for (const char* key : {"tools", "functions"}) {
    if (kind == api_kind::chat && std::string(key) == "tools") continue;
    const json* f = field(body, key);
    if (f && !(f->is_array() && f->empty())) return bad_request(std::string(key) + no, key, "unsupported");
  }
  for (const char* key : {"tool_choice", "function_call"}) {
    if (kind == api_kind::chat && std::string(key) == "tool_choice") continue;
    const json* f = field(body, key);
    if (f && !(f->is_string() && *f == "none")) {
      return bad_request(std::string(key) + no + "; only \"none\" is accepted", key, "unsupported");
    }
  }
  return std::nullopt;
}

// echo (completions): the prompt's text prefixes each choice, and its token logprobs the choice's
// logprobs; one choice per prompt (n > 1 and best_of are refused with it).
// Runs first, so echo's conflicts are named as such whatever else is wrong with n or best_of.
maybe_error read_echo(const json& body, api_kind kind, openai_request& r) {
  if (auto e = read_bool(body, "echo", r.echo)) return e;
  if (!r.echo) return std::nullopt;
  if (kind != api_kind::completion) return bad_request("echo is only supported on /v1/completions", "echo");
  const json* n = field(body, "n");
  if (n && !(n->is_number_integer() && n->get<int64_t>() == 1)) {
    return bad_request("echo is not supported with n > 1", "echo");
  }
  if (field(body, "best_of")) return bad_request("echo is not supported with best_of", "echo");
  return std::nullopt;
}

// With echo and logprobs, the prompt's tokens need their top `logprobs` too.
void widen_prompt_logprobs_for_echo(openai_request& r) {
  if (r.echo && r.gen.params.logprobs >= 0) {
    r.gen.params.prompt_logprobs = std::max(r.gen.params.prompt_logprobs, r.gen.params.logprobs);
  }
}

maybe_error reject_unsupported(const json& body, api_kind kind) {
  if (const json* b = field(body, "best_of"); b && !(b->is_number_integer() && b->get<int64_t>() == 1)) {
    return bad_request("best_of is not supported", "best_of", "unsupported");
  }
  if (const json* s = field(body, "suffix"); s && !(s->is_string() && s->get<std::string>().empty())) {
    return bad_request("suffix is not supported", "suffix", "unsupported");
  }
  return reject_tool_fields(body, kind);
}

// The body again with its objects in the client's order (only for requests with a schema: the
// grammar follows property order); its depth was bounded when it was first parsed.
nlohmann::ordered_json parse_ordered(std::string_view raw) {
  return nlohmann::ordered_json::parse(raw, nullptr, false);
}

}  // namespace

api_result<json> parse_json_body(const std::string& text, int32_t max_depth) {
  if (json_nesting_depth(text, max_depth) > max_depth) {
    return bad_request("the request JSON is nested deeper than " + std::to_string(max_depth) +
                           " levels (the server's --max-json-depth)", {}, "json_too_deep");
  }
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return bad_request("the request body is not valid JSON");
  if (!body.is_object()) return bad_request("the request body must be a JSON object");
  return body;
}

api_result<openai_request> parse_openai_request(api_kind kind, const json& body, const api_context& ctx,
                                                std::string_view raw_body) {
  try {
    if (!body.is_object()) return bad_request("the request body must be a JSON object");
    openai_request r;
    r.kind = kind;
    r.model = ctx.model_name;
    r.system_fingerprint = ctx.system_fingerprint;
    if (const json* m = field(body, "model")) {
      if (!m->is_string()) return bad_request("model must be a string", "model");
      // Any name is accepted (one model is served); responses report the served name.
    }
    maybe_error e;
    if ((e = read_echo(body, kind, r))) return *e;
    if ((e = reject_unsupported(body, kind))) return *e;
    tool_request tools;
    if (kind == api_kind::chat && (e = read_tools(body, tools))) return *e;
    if (!raw_body.empty() && tools.active()) keep_client_order(parse_ordered(raw_body), tools);
    if ((e = read_stream(body, r))) return *e;
    if ((e = read_int(body, "n", r.gen.n, 1, ctx.max_n))) return *e;
    if ((e = read_sampling(body, kind, ctx, r))) return *e;
    widen_prompt_logprobs_for_echo(r);
    structured_output_request so;
    if ((e = read_structured_output(body, so))) return *e;
    if (!raw_body.empty() && so.spec.type == constraint_spec::kind::json_schema) {
      keep_client_order(parse_ordered(raw_body), so);
    }
    if ((e = take_response_format(so, tools))) return *e;  // tools + response_format: a call or formatted content
    if (kind == api_kind::completion) {
      const json* p = field(body, "prompt");
      if (!p) return bad_request("prompt is required", "prompt");
      auto list = parse_prompt_list(*p, prompt_list_options{ctx.codec, ctx.vocab_size, true, k_max_prompts});
      if (std::holds_alternative<api_error>(list)) return std::get<api_error>(list);
      r.prompts = std::move(std::get<std::vector<prompt_item>>(list));
      // max_tokens is checked against the longest prompt (every prompt shares it).
      size_t longest = 0;
      for (size_t i = 0; i < r.prompts.size(); ++i)
        if (r.prompts[i].ids.size() > r.prompts[longest].ids.size()) longest = i;
      r.gen.prompt_ids = r.prompts[longest].ids;
      if ((e = read_max_tokens(body, kind, ctx, r))) return *e;
      r.gen.prompt_ids = r.prompts[0].ids;
      if ((e = compile_structured_output(ctx.codec, so, r.gen))) return *e;  // last: the costly check
      return r;
    }
    std::string rendered;
    if ((e = read_chat_prompt(body, ctx, tools, r.gen.prompt_ids, &rendered))) return *e;
    if ((e = read_reasoning(body, ctx, rendered, r))) return *e;
    if ((e = read_max_tokens(body, kind, ctx, r))) return *e;
    if (tools.active()) {
      // The generic tool format: the answer is constrained to the envelope of the allowed calls.
      r.tool_syntax = native_tool_syntax(ctx, tools);
      if (r.tool_syntax == tool_format::generic) {
        so.spec = {constraint_spec::kind::json_schema, tool_envelope_schema(tools).dump(), tools.content_strict};
        so.param = "tools";
      } else if (tools.choice != tool_choice_mode::automatic || !tools.content_schema.is_null()) {
        // Tool schemas are rarely written for strict mode: keywords the engine cannot enforce are ignored.
        so.spec = {constraint_spec::kind::json_schema, native_constraint_schema(tools, r.tool_syntax), false};
        if (r.tool_syntax == tool_format::pythonic) {
          if (!tools.content_schema.is_null()) {
            return bad_request("response_format cannot be combined with tools under this model's pythonic tool format",
                               "response_format", "unsupported");
          }
          so.spec = {constraint_spec::kind::grammar, pythonic_call_grammar(tools)};
          if (so.spec.text.empty()) so.spec = {};
        }
        so.param = "tools";
      }  // else auto with a native template: the model writes its own format freely, parsed at the end
      r.tool_calls = true;
      r.tool_names = tools.names();
    }
    if ((e = compile_structured_output(ctx.codec, so, r.gen))) return *e;  // last: the costly check
    return r;
  } catch (const std::exception& ex) {  // nlohmann type errors we did not foresee
    return bad_request(std::string("bad request: ") + ex.what());
  }
}

api_result<std::vector<int32_t>> tokenize_body(const json& body, const api_context& ctx) {
  try {
    std::vector<int32_t> ids;
    maybe_error e;
    if (field(body, "messages")) {
      e = read_chat_prompt(body, ctx, tool_request{}, ids);
    } else {
      bool add_special = true;
      if ((e = read_bool(body, "add_special_tokens", add_special))) return *e;
      const json* p = field(body, "prompt");
      if (p && p->is_string()) {  // /tokenize takes "" too
        e = encode_text(p->get_ref<const std::string&>(), ctx, add_special, false, "prompt", ids);
      } else {
        e = read_prompt(body, ctx, add_special, ids);
      }
    }
    if (e) return *e;
    return ids;
  } catch (const std::exception& ex) {
    return bad_request(std::string("bad request: ") + ex.what());
  }
}

const char* openai_finish_reason(finish_reason r) {
  switch (r) {
    case finish_reason::stop: return "stop";
    case finish_reason::length: return "length";
    case finish_reason::cancelled: return "abort";
    case finish_reason::error: return "error";
    default: return nullptr;
  }
}

}  // namespace troupe
