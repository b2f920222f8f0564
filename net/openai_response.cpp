// OpenAI response bodies and the per-request generation_tracker (see openai_response.h).
#include "net/openai_response.h"

#include <ctime>
#include <random>

#include "net/tool_call_parser.h"

namespace troupe {

using json = nlohmann::json;

response_meta make_response_meta(const openai_request& r, const std::string& request_id) {
  response_meta m;
  m.kind = r.kind;
  m.id = (r.kind == api_kind::chat ? "chatcmpl-" : "cmpl-") + request_id;
  m.created = static_cast<int64_t>(std::time(nullptr));
  m.model = r.model;
  m.logprobs = r.gen.params.logprobs;
  m.tool_calls = r.tool_calls;
  m.tool_names = r.tool_names;
  return m;
}

generation_tracker::generation_tracker(int32_t n, int32_t num_prompt_tokens, bool keep_output)
    : choices_(static_cast<size_t>(n > 0 ? n : 1)),
      num_prompt_tokens_(num_prompt_tokens),
      keep_output_(keep_output) {}

bool generation_tracker::add(const generation_event& ev) {
  if (ev.index < 0 || ev.index >= static_cast<int32_t>(choices_.size())) return false;
  choice& c = choices_[static_cast<size_t>(ev.index)];
  if (c.finish != finish_reason::none) return false;
  c.num_tokens += static_cast<int32_t>(ev.token_ids.size());
  any_tokens_ = any_tokens_ || !ev.token_ids.empty() || !ev.text.empty();
  if (keep_output_) {
    c.text += ev.text;
    c.token_ids.insert(c.token_ids.end(), ev.token_ids.begin(), ev.token_ids.end());
    c.logprobs.insert(c.logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
  }
  if (ev.finish != finish_reason::none) {
    c.finish = ev.finish;
    ++num_finished_;
    engine_usage_ = ev.usage;
  }
  return true;
}

usage_info generation_tracker::usage() const {
  usage_info u = engine_usage_;
  int32_t counted = 0;
  for (const choice& c : choices_) counted += c.num_tokens;
  // The engine's numbers win; ours fill in what an engine did not report.
  if (u.prompt_tokens == 0) u.prompt_tokens = num_prompt_tokens_;
  if (u.completion_tokens < counted) u.completion_tokens = counted;
  return u;
}

json usage_json(const usage_info& u) {
  return json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", u.cached_prompt_tokens}}}};
}

std::string token_text(const text_codec* codec, int32_t token) {
  if (codec && codec->has_tokenizer()) {
    auto t = codec->decode({token}, false);
    if (t.ok()) return t.value();
  }
  return "token_id:" + std::to_string(token);
}

namespace {

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char ch : s) b.push_back(static_cast<int>(ch));
  return b;
}

json completion_logprobs(const std::vector<token_logprobs>& lps, const text_codec* codec, int64_t offset) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  for (const token_logprobs& lp : lps) {
    std::string text = token_text(codec, lp.token);
    tokens.push_back(text);
    token_lps.push_back(lp.logprob);
    json top = json::object();
    for (const top_logprob& t : lp.top) top[token_text(codec, t.token)] = t.logprob;
    tops.push_back(std::move(top));
    offsets.push_back(offset);
    offset += static_cast<int64_t>(text.size());
  }
  return json{{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops},
              {"text_offset", offsets}};
}

json chat_logprobs(const std::vector<token_logprobs>& lps, const text_codec* codec) {
  json content = json::array();
  for (const token_logprobs& lp : lps) {
    std::string text = token_text(codec, lp.token);
    json top = json::array();
    for (const top_logprob& t : lp.top) {
      std::string tt = token_text(codec, t.token);
      top.push_back({{"token", tt}, {"logprob", t.logprob}, {"bytes", bytes_of(tt)}});
    }
    content.push_back({{"token", text}, {"logprob", lp.logprob}, {"bytes", bytes_of(text)},
                       {"top_logprobs", std::move(top)}});
  }
  return json{{"content", std::move(content)}};
}

json finish_json(finish_reason r) {
  const char* name = openai_finish_reason(r);
  return name ? json(name) : json(nullptr);
}

// "call_" and 24 random letters and digits, as OpenAI's ids look.
std::string new_call_id() {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += alphabet[rng() % (sizeof(alphabet) - 1)];
  return id;
}

json tool_calls_json(const std::vector<parsed_tool_call>& calls) {
  json out = json::array();
  for (const parsed_tool_call& c : calls) {
    out.push_back({{"id", new_call_id()}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return out;
}

// Calls are only reported when the choice ended normally: a truncated envelope is text.
const char* tool_finish(const tool_output& out, finish_reason fin) {
  return out.is_calls && fin == finish_reason::stop ? "tool_calls" : openai_finish_reason(fin);
}

json chunk_head(const response_meta& meta) {
  return json{{"id", meta.id},
              {"object", meta.kind == api_kind::chat ? "chat.completion.chunk" : "text_completion"},
              {"created", meta.created},
              {"model", meta.model}};
}

}  // namespace

json logprobs_json(api_kind kind, const std::vector<token_logprobs>& lps, const text_codec* codec,
                   int64_t text_offset) {
  return kind == api_kind::chat ? chat_logprobs(lps, codec) : completion_logprobs(lps, codec, text_offset);
}

std::string stream_chunk(const response_meta& meta, const generation_event& ev, const text_codec* codec,
                         bool first_of_choice, bool include_usage, int64_t text_offset) {
  json choice = {{"index", ev.index}};
  if (meta.kind == api_kind::chat) {
    json delta = json::object();
    if (first_of_choice) delta["role"] = "assistant";
    delta["content"] = ev.text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = ev.text;
  }
  choice["logprobs"] = meta.logprobs >= 0 && !ev.logprobs.empty()
                           ? logprobs_json(meta.kind, ev.logprobs, codec, text_offset)
                           : json(nullptr);
  choice["finish_reason"] = finish_json(ev.finish);
  json chunk = chunk_head(meta);
  chunk["choices"] = json::array({std::move(choice)});
  if (include_usage) chunk["usage"] = nullptr;
  return dump_json(chunk);
}

std::string usage_chunk(const response_meta& meta, const usage_info& usage) {
  json chunk = chunk_head(meta);
  chunk["choices"] = json::array();
  chunk["usage"] = usage_json(usage);
  return dump_json(chunk);
}

std::pair<json, json> tool_message(const response_meta& meta, const std::string& text, finish_reason fin) {
  const tool_output out = parse_tool_output(text, meta.tool_names);
  json message = out.is_calls && fin == finish_reason::stop
                     ? json{{"role", "assistant"}, {"content", nullptr}, {"tool_calls", tool_calls_json(out.calls)}}
                     : json{{"role", "assistant"}, {"content", out.is_calls ? text : out.content}};
  const char* reason = tool_finish(out, fin);
  return {std::move(message), reason ? json(reason) : json(nullptr)};
}

std::vector<std::string> tool_choice_chunks(const response_meta& meta, int32_t index, const std::string& text,
                                            finish_reason fin, bool include_usage) {
  tool_output out = parse_tool_output(text, meta.tool_names);
  if (out.is_calls && fin != finish_reason::stop) out = tool_output{false, text, {}};  // not a finished answer
  std::vector<json> deltas;
  if (out.is_calls) {
    const json calls = tool_calls_json(out.calls);
    for (size_t i = 0; i < calls.size(); ++i) {
      json head = {{"index", i}, {"id", calls[i]["id"]}, {"type", "function"},
                   {"function", {{"name", calls[i]["function"]["name"]}, {"arguments", ""}}}};
      json d = {{"tool_calls", json::array({std::move(head)})}};
      if (i == 0) d = {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", d["tool_calls"]}};
      deltas.push_back(std::move(d));
      deltas.push_back({{"tool_calls", json::array({{{"index", i}, {"function", {{"arguments", calls[i]["function"]["arguments"]}}}}})}});
    }
  } else {
    deltas.push_back({{"role", "assistant"}, {"content", out.content}});
  }
  deltas.push_back(json::object());
  std::vector<std::string> chunks;
  for (size_t i = 0; i < deltas.size(); ++i) {
    const bool last = i + 1 == deltas.size();
    const char* reason = last ? tool_finish(out, fin) : nullptr;
    json choice = {{"index", index}, {"delta", std::move(deltas[i])}, {"logprobs", nullptr},
                   {"finish_reason", reason ? json(reason) : json(nullptr)}};
    json chunk = chunk_head(meta);
    chunk["choices"] = json::array({std::move(choice)});
    if (include_usage) chunk["usage"] = nullptr;
    chunks.push_back(dump_json(chunk));
  }
  return chunks;
}

json final_response(const response_meta& meta, const generation_tracker& tracker, const text_codec* codec) {
  json choices = json::array();
  int32_t index = 0;
  for (const generation_tracker::choice& c : tracker.choices()) {
    json ch = {{"index", index++}};
    if (meta.kind == api_kind::chat && meta.tool_calls) {
      auto [message, reason] = tool_message(meta, c.text, c.finish);
      ch["message"] = std::move(message);
      ch["logprobs"] = meta.logprobs >= 0 ? logprobs_json(meta.kind, c.logprobs, codec, 0) : json(nullptr);
      ch["finish_reason"] = std::move(reason);
      choices.push_back(std::move(ch));
      continue;
    }
    if (meta.kind == api_kind::chat) {
      ch["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      ch["text"] = c.text;
    }
    ch["logprobs"] = meta.logprobs >= 0 ? logprobs_json(meta.kind, c.logprobs, codec, 0) : json(nullptr);
    ch["finish_reason"] = finish_json(c.finish);
    choices.push_back(std::move(ch));
  }
  return json{{"id", meta.id},
              {"object", meta.kind == api_kind::chat ? "chat.completion" : "text_completion"},
              {"created", meta.created},
              {"model", meta.model},
              {"choices", std::move(choices)},
              {"usage", usage_json(tracker.usage())}};
}

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace troupe
