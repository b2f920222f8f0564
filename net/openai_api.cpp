// OpenAI request mapping and validation (see openai_api.h). Ranges follow the OpenAI API where it
// has one and vLLM otherwise; the runtime validates again, this layer names the field.
#include "net/openai_api.h"

#include <cmath>

#include "net/structured_output_request.h"
#include "net/pythonic_calls.h"
#include "net/tool_request.h"
#include <optional>

namespace troupe {
namespace {

using json = nlohmann::json;
using maybe_error = std::optional<api_error>;

constexpr int32_t k_max_logprobs = 20;
constexpr int32_t k_max_prompt_logprobs = 20;
constexpr size_t k_max_stop_strings = 16;

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string num_str(double v) {
  std::string s = json(v).dump();
  return s;
}

maybe_error read_float(const json& body, const char* key, float& out, double lo, double hi,
                       bool lo_open = false) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) return bad_request(std::string(key) + " must be a number", key);
  double d = v->get<double>();
  bool below = lo_open ? !(d > lo) : !(d >= lo);
  if (!std::isfinite(d) || below || d > hi) {
    return bad_request(std::string(key) + " must be in " + (lo_open ? "(" : "[") + num_str(lo) +
                           ", " + num_str(hi) + "], got " + num_str(d), key);
  }
  out = static_cast<float>(d);
  return std::nullopt;
}

maybe_error read_int(const json& body, const char* key, int32_t& out, int64_t lo, int64_t hi) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) return bad_request(std::string(key) + " must be an integer", key);
  const bool too_big = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
  if (too_big || v->get<int64_t>() < lo || v->get<int64_t>() > hi) {
    return bad_request(std::string(key) + " must be in [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + "], got " + describe_json(*v), key);
  }
  out = static_cast<int32_t>(v->get<int64_t>());
  return std::nullopt;
}

maybe_error read_bool(const json& body, const char* key, bool& out) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) return bad_request(std::string(key) + " must be a boolean", key);
  out = v->get<bool>();
  return std::nullopt;
}

maybe_error check_token_id(const json& v, const api_context& ctx, const char* param) {
  if (!v.is_number_integer()) return bad_request(std::string(param) + " must hold token ids (integers)", param);
  int64_t id = v.get<int64_t>();
  if (id < 0 || (ctx.vocab_size > 0 && id >= ctx.vocab_size)) {
    return bad_request("token id " + describe_json(v) + " in " + param + " is outside the vocabulary [0, " +
                           std::to_string(ctx.vocab_size) + ")", param);
  }
  return std::nullopt;
}

maybe_error read_ids(const json& arr, const api_context& ctx, const char* param,
                     std::vector<int32_t>& out) {
  out.clear();
  out.reserve(arr.size());
  for (const json& v : arr) {
    if (auto e = check_token_id(v, ctx, param)) return e;
    out.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return std::nullopt;
}

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

maybe_error read_stop(const json& body, sampling_params& p) {
  const json* s = field(body, "stop");
  if (!s) return std::nullopt;
  if (s->is_string()) {
    if (!s->get_ref<const std::string&>().empty()) p.stop.push_back(s->get<std::string>());
    return std::nullopt;
  }
  if (!s->is_array()) return bad_request("stop must be a string or a list of strings", "stop");
  if (s->size() > k_max_stop_strings) {
    return bad_request("stop holds at most " + std::to_string(k_max_stop_strings) + " strings", "stop");
  }
  for (const json& v : *s) {
    if (!v.is_string()) return bad_request("stop must be a string or a list of strings", "stop");
    if (!v.get_ref<const std::string&>().empty()) p.stop.push_back(v.get<std::string>());
  }
  return std::nullopt;
}

maybe_error read_logit_bias(const json& body, const api_context& ctx, sampling_params& p) {
  const json* b = field(body, "logit_bias");
  if (!b) return std::nullopt;
  if (!b->is_object()) return bad_request("logit_bias must map token ids to numbers", "logit_bias");
  for (auto it = b->begin(); it != b->end(); ++it) {
    int64_t id = -1;
    try {
      size_t used = 0;
      id = std::stoll(it.key(), &used);
      if (used != it.key().size()) id = -1;
    } catch (const std::exception&) {
      id = -1;
    }
    if (id < 0 || (ctx.vocab_size > 0 && id >= ctx.vocab_size)) {
      return bad_request("logit_bias key '" + it.key() + "' is not a token id of this model", "logit_bias");
    }
    if (!it.value().is_number() || !std::isfinite(it.value().get<double>()) ||
        std::fabs(it.value().get<double>()) > 100.0) {
      return bad_request("logit_bias values must be numbers in [-100, 100]", "logit_bias");
    }
    p.logit_bias.emplace_back(static_cast<int32_t>(id), it.value().get<float>());
  }
  return std::nullopt;
}

maybe_error read_sampling(const json& body, api_kind kind, const api_context& ctx,
                          openai_request& r) {
  sampling_params& p = r.gen.params;
  maybe_error e;
  if ((e = read_float(body, "temperature", p.temperature, 0.0, 1e6))) return e;
  if ((e = read_float(body, "top_p", p.top_p, 0.0, 1.0, true))) return e;
  if ((e = read_int(body, "top_k", p.top_k, -1, INT32_MAX))) return e;
  if ((e = read_float(body, "min_p", p.min_p, 0.0, 1.0))) return e;
  if ((e = read_float(body, "presence_penalty", p.presence_penalty, -2.0, 2.0))) return e;
  if ((e = read_float(body, "frequency_penalty", p.frequency_penalty, -2.0, 2.0))) return e;
  if ((e = read_float(body, "repetition_penalty", p.repetition_penalty, 0.0, 1e6, true))) return e;
  if ((e = read_int(body, "min_tokens", p.min_tokens, 0, INT32_MAX))) return e;
  if ((e = read_bool(body, "ignore_eos", p.ignore_eos))) return e;
  if ((e = read_stop(body, p))) return e;
  if ((e = read_logit_bias(body, ctx, p))) return e;
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) return bad_request("seed must be an integer", "seed");
    p.seed = s->is_number_unsigned() ? s->get<uint64_t>() : static_cast<uint64_t>(s->get<int64_t>());
  }
  if (const json* ids = field(body, "stop_token_ids")) {
    if (!ids->is_array()) return bad_request("stop_token_ids must be a list of token ids", "stop_token_ids");
    if ((e = read_ids(*ids, ctx, "stop_token_ids", p.stop_token_ids))) return e;
  }
  if (kind == api_kind::completion) {
    int32_t k = -1;
    if ((e = read_int(body, "logprobs", k, 0, k_max_logprobs))) return e;
    p.logprobs = k;
  } else {
    if ((e = read_bool(body, "logprobs", r.chat_logprobs))) return e;
    int32_t top = 0;
    if ((e = read_int(body, "top_logprobs", top, 0, k_max_logprobs))) return e;
    if (field(body, "top_logprobs") && !r.chat_logprobs) {
      return bad_request("top_logprobs requires logprobs to be true", "top_logprobs");
    }
    p.logprobs = r.chat_logprobs ? top : -1;
  }
  if ((e = read_int(body, "prompt_logprobs", r.prompt_logprobs, 0, k_max_prompt_logprobs))) return e;
  p.prompt_logprobs = r.prompt_logprobs;
  p.lp_mode = ctx.default_lp_mode;
  if (const json* m = field(body, "logprobs_mode")) {
    const std::string v = m->is_string() ? m->get<std::string>() : std::string();
    if (v == "raw" || v == "raw_logprobs") {
      p.lp_mode = logprobs_mode::raw;
    } else if (v == "processed" || v == "processed_logprobs") {
      p.lp_mode = logprobs_mode::processed;
    } else {
      return bad_request("logprobs_mode must be \"raw\" or \"processed\"", "logprobs_mode");
    }
  }
  return std::nullopt;
}

maybe_error read_stream(const json& body, openai_request& r) {
  if (auto e = read_bool(body, "stream", r.stream)) return e;
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) return bad_request("stream_options must be an object", "stream_options");
    if (!r.stream) return bad_request("stream_options is only allowed with stream: true", "stream_options");
    if (auto e = read_bool(*so, "include_usage", r.include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }
  return std::nullopt;
}

// max_tokens defaults to what is left of session_len; prompt + max_tokens must fit.
maybe_error read_max_tokens(const json& body, api_kind kind, const api_context& ctx,
                            openai_request& r) {
  const int64_t num_prompt = static_cast<int64_t>(r.gen.prompt_ids.size());
  const char* key = "max_tokens";
  if (kind == api_kind::chat && field(body, "max_completion_tokens")) key = "max_completion_tokens";
  int32_t max_tokens = -1;
  // 0 only scores the prompt: allowed where the prompt's logprobs come back (echo, prompt_logprobs).
  const int64_t lowest = r.echo || r.prompt_logprobs >= 0 ? 0 : 1;
  if (auto e = read_int(body, key, max_tokens, lowest, INT32_MAX)) return e;
  if (ctx.session_len > 0 && num_prompt >= ctx.session_len) {
    return bad_request("This model's maximum context length is " + std::to_string(ctx.session_len) +
                           " tokens. However, your prompt has " + std::to_string(num_prompt) +
                           " tokens, which leaves no room for completion tokens.",
                       "prompt", "context_too_long");
  }
  if (max_tokens < 0) {
    int64_t left = ctx.session_len > 0 ? ctx.session_len - num_prompt : 16;
    max_tokens = static_cast<int32_t>(std::min<int64_t>(left, INT32_MAX));
  } else if (ctx.session_len > 0 && num_prompt + max_tokens > ctx.session_len) {
    return bad_request("This model's maximum context length is " + std::to_string(ctx.session_len) +
                           " tokens. However, you requested " + std::to_string(num_prompt + max_tokens) +
                           " tokens (" + std::to_string(num_prompt) + " in the prompt, " +
                           std::to_string(max_tokens) + " in the completion).",
                       key, "context_too_long");
  }
  r.gen.params.max_tokens = max_tokens;
  if (r.gen.params.min_tokens > max_tokens) {
    return bad_request("min_tokens (" + std::to_string(r.gen.params.min_tokens) +
                           ") must not exceed max_tokens (" + std::to_string(max_tokens) + ")", "min_tokens");
  }
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
