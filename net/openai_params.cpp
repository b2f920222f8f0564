// The OpenAI request's field readers and parameter readers (see openai_params.h). Ranges follow
// the OpenAI API where it has one and vLLM otherwise; the runtime validates again, this layer names
// the field.
#include "net/openai_params.h"

#include <algorithm>
#include <cmath>

namespace troupe::api_fields {
namespace {

constexpr int32_t k_max_logprobs = 20;
constexpr int32_t k_max_prompt_logprobs = 20;
constexpr size_t k_max_stop_strings = 16;

std::string num_str(double v) {
  std::string s = json(v).dump();
  return s;
}

}  // namespace

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

maybe_error read_float(const json& body, const char* key, float& out, double lo, double hi,
                       bool lo_open) {
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

namespace {

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

}  // namespace

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

}  // namespace troupe::api_fields
