// OpenAI response bodies and the per-request generation_tracker (see openai_response.h).
#include "net/openai_response.h"

#include <ctime>
#include <random>

#include "net/native_tool_format.h"

namespace troupe {

using json = nlohmann::ordered_json;

response_meta make_response_meta(const openai_request& r, const std::string& request_id) {
  response_meta m;
  m.kind = r.kind;
  m.id = (r.kind == api_kind::chat ? "chatcmpl-" : "cmpl-") + request_id;
  m.created = static_cast<int64_t>(std::time(nullptr));
  m.model = r.model;
  m.system_fingerprint = r.system_fingerprint;
  m.logprobs = r.gen.params.logprobs;
  m.n = std::max(1, r.gen.n);
  m.echo = r.echo;
  m.prompt_logprobs = r.prompt_logprobs;
  for (const prompt_item& p : r.prompts) {
    m.prompt_texts.push_back(p.text);
    m.first_tokens.push_back(p.ids.empty() ? -1 : p.ids[0]);
  }
  m.separate_reasoning = r.kind == api_kind::chat && r.separate_reasoning;
  m.reasoning_starts_open = r.reasoning_starts_open;
  m.tool_calls = r.tool_calls;
  m.tool_names = r.tool_names;
  m.tool_syntax = r.tool_syntax;
  return m;
}

int64_t response_meta::completion_offset(int32_t index) const {
  const auto p = static_cast<size_t>(index / std::max(1, n));
  return p < prompt_texts.size() ? static_cast<int64_t>(prompt_texts[p].size()) : 0;
}

int64_t initial_text_offset(const response_meta& meta, int32_t index) {
  return meta.echo ? 0 : meta.completion_offset(index);
}

generation_tracker::generation_tracker(int32_t n, int32_t num_prompt_tokens, bool keep_output, int32_t num_prompts)
    : choices_(static_cast<size_t>(n > 0 ? n : 1)),
      num_prompt_tokens_(num_prompt_tokens),
      keep_output_(keep_output),
      per_prompt_(std::max(1, (n > 0 ? n : 1) / std::max(1, num_prompts))),
      engine_usage_(static_cast<size_t>(std::max(1, num_prompts))) {}

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
    if (!ev.prompt_logprobs.empty()) c.prompt_logprobs = ev.prompt_logprobs;
  }
  if (ev.finish != finish_reason::none) {
    c.finish = ev.finish;
    ++num_finished_;
    const auto p = std::min(engine_usage_.size() - 1, static_cast<size_t>(ev.index / per_prompt_));
    engine_usage_[p] = ev.usage;
  }
  return true;
}

usage_info generation_tracker::usage() const {
  usage_info u;
  for (const usage_info& e : engine_usage_) {
    u.prompt_tokens += e.prompt_tokens;
    u.completion_tokens += e.completion_tokens;
    u.cached_prompt_tokens += e.cached_prompt_tokens;
  }
  int32_t counted = 0;
  for (const choice& c : choices_) counted += c.num_tokens;
  // The engine's numbers win; ours fill in what an engine did not report.
  if (u.prompt_tokens == 0) u.prompt_tokens = num_prompt_tokens_;
  if (u.completion_tokens < counted) u.completion_tokens = counted;
  return u;
}

nlohmann::json usage_json(const usage_info& u) {
  return nlohmann::json{{"prompt_tokens", u.prompt_tokens},
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

// The completions logprobs object, built token by token; text_offset counts bytes of the full text.
struct completion_lp {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  int64_t offset = 0;

  void add_first(const std::string& text) {  // a prompt's first token: nothing to condition on
    tokens.push_back(text);
    token_lps.push_back(nullptr);
    tops.push_back(nullptr);
    offsets.push_back(offset);
    offset += static_cast<int64_t>(text.size());
  }
  void add(const token_logprobs& lp, const text_codec* codec, int32_t k) {
    const std::string text = token_text(codec, lp.token);
    tokens.push_back(text);
    token_lps.push_back(lp.logprob);
    json top = json::object();  // ordered: best first, as the engine ranked them
    for (size_t i = 0; i < lp.top.size() && static_cast<int32_t>(i) < k; ++i) {
      const std::string t = token_text(codec, lp.top[i].token);
      if (!top.contains(t)) top[t] = lp.top[i].logprob;  // two ids with one text: the better one
    }
    tops.push_back(std::move(top));
    offsets.push_back(offset);
    offset += static_cast<int64_t>(text.size());
  }
  json done() const {
    return json{{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
  }
};

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

// vLLM's prompt_logprobs: [null, {"<id>": {"logprob", "rank", "decoded_token"}, ...}, ...] with the
// prompt's token and the top k of each position (rank: 1-based place among the top k, when there).
json vllm_prompt_logprobs(const std::vector<token_logprobs>& lps, const text_codec* codec, int32_t k) {
  json out = json::array({nullptr});
  for (const token_logprobs& lp : lps) {
    json pos = json::object();
    auto put = [&](int32_t token, float logprob, int32_t rank) {
      const std::string key = std::to_string(token);
      if (pos.contains(key)) return;
      json e = {{"logprob", logprob}};
      if (rank > 0) e["rank"] = rank;
      e["decoded_token"] = token_text(codec, token);
      pos[key] = std::move(e);
    };
    int32_t rank = 0;
    for (size_t i = 0; i < lp.top.size(); ++i)
      if (lp.top[i].token == lp.token) rank = static_cast<int32_t>(i) + 1;
    put(lp.token, lp.logprob, rank);
    for (size_t i = 0; i < lp.top.size() && static_cast<int32_t>(i) < k; ++i)
      put(lp.top[i].token, lp.top[i].logprob, static_cast<int32_t>(i) + 1);
    out.push_back(std::move(pos));
  }
  return out;
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
  json h = {{"id", meta.id},
            {"object", meta.kind == api_kind::chat ? "chat.completion.chunk" : "text_completion"},
            {"created", meta.created},
            {"model", meta.model}};
  if (!meta.system_fingerprint.empty()) h["system_fingerprint"] = meta.system_fingerprint;
  return h;
}

const std::string& prompt_text(const response_meta& meta, int32_t index) {
  static const std::string none;
  const auto p = static_cast<size_t>(index / std::max(1, meta.n));
  return p < meta.prompt_texts.size() ? meta.prompt_texts[p] : none;
}

// A completion choice's logprobs: with echo, the prompt's tokens first (the first one null), then
// the generated ones; text_offset continues from `offset`.
json completion_choice_logprobs(const response_meta& meta, int32_t index, bool with_prompt,
                                const std::vector<token_logprobs>& prompt_lps,
                                const std::vector<token_logprobs>& lps, const text_codec* codec, int64_t& offset) {
  completion_lp b;
  b.offset = offset;
  if (with_prompt) {
    const auto p = static_cast<size_t>(index / std::max(1, meta.n));
    if (p < meta.first_tokens.size() && meta.first_tokens[p] >= 0) b.add_first(token_text(codec, meta.first_tokens[p]));
    for (const token_logprobs& lp : prompt_lps) b.add(lp, codec, meta.logprobs);
    b.offset = offset + static_cast<int64_t>(prompt_text(meta, index).size());
  }
  for (const token_logprobs& lp : lps) b.add(lp, codec, meta.logprobs);
  offset = b.offset;
  return b.done();
}

}  // namespace

json logprobs_json(api_kind kind, const std::vector<token_logprobs>& lps, const text_codec* codec,
                   int64_t text_offset) {
  if (kind == api_kind::chat) return chat_logprobs(lps, codec);
  completion_lp b;
  b.offset = text_offset;
  for (const token_logprobs& lp : lps) b.add(lp, codec, static_cast<int32_t>(lp.top.size()));
  return b.done();
}

std::string stream_chunk(const response_meta& meta, const generation_event& ev, const text_codec* codec,
                         bool first_of_choice, bool include_usage, int64_t& text_offset,
                         const reasoning_split* reasoning) {
  json choice = {{"index", ev.index}};
  const bool echo_now = first_of_choice && meta.echo && meta.kind == api_kind::completion;
  const std::string text = echo_now ? prompt_text(meta, ev.index) + ev.text : ev.text;
  if (meta.kind == api_kind::chat) {
    json delta = json::object();
    if (first_of_choice) delta["role"] = "assistant";
    if (reasoning) {  // as vLLM streams it: reasoning deltas carry no content key
      if (!reasoning->reasoning.empty()) delta["reasoning_content"] = reasoning->reasoning;
      if (!reasoning->content.empty() || reasoning->reasoning.empty()) delta["content"] = reasoning->content;
    } else {
      delta["content"] = text;
    }
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text;
  }
  const bool any_lp = !ev.logprobs.empty() || (echo_now && meta.logprobs >= 0);
  if (meta.logprobs >= 0 && any_lp) {
    if (meta.kind == api_kind::chat) {
      choice["logprobs"] = chat_logprobs(ev.logprobs, codec);
    } else {
      int64_t offset = text_offset;
      choice["logprobs"] = completion_choice_logprobs(meta, ev.index, echo_now, ev.prompt_logprobs, ev.logprobs,
                                                      codec, offset);
    }
  } else {
    choice["logprobs"] = nullptr;
  }
  if (meta.prompt_logprobs >= 0 && first_of_choice && meta.kind == api_kind::completion) {
    choice["prompt_logprobs"] = vllm_prompt_logprobs(ev.prompt_logprobs, codec, meta.prompt_logprobs);
  }
  choice["finish_reason"] = finish_json(ev.finish);
  json chunk = chunk_head(meta);
  chunk["choices"] = json::array({std::move(choice)});
  if (meta.prompt_logprobs >= 0 && first_of_choice && meta.kind == api_kind::chat && ev.index == 0) {
    chunk["prompt_logprobs"] = vllm_prompt_logprobs(ev.prompt_logprobs, codec, meta.prompt_logprobs);
  }
  if (include_usage) chunk["usage"] = nullptr;
  text_offset += static_cast<int64_t>(text.size());
  return dump_json(chunk);
}

std::string usage_chunk(const response_meta& meta, const usage_info& usage) {
  json chunk = chunk_head(meta);
  chunk["choices"] = json::array();
  chunk["usage"] = usage_json(usage);
  return dump_json(chunk);
}

std::pair<json, json> tool_message(const response_meta& meta, const std::string& text, finish_reason fin) {
  const tool_output out = parse_native_tool_output(meta.tool_syntax, text, meta.tool_names);
  json message = out.is_calls && fin == finish_reason::stop
                     ? json{{"role", "assistant"},
                            {"content", out.content.empty() ? json(nullptr) : json(out.content)},  // prose before native calls
                            {"tool_calls", tool_calls_json(out.calls)}}
                     : json{{"role", "assistant"}, {"content", out.is_calls ? text : out.content}};
  const char* reason = tool_finish(out, fin);
  return {std::move(message), reason ? json(reason) : json(nullptr)};
}

std::vector<std::string> tool_stream_chunks(const response_meta& meta, int32_t index, tool_stream& ts,
                                            const std::string& text, finish_reason fin, bool include_usage) {
  std::vector<tool_delta> parts{ts.feed(text)};
  bool calls = false;
  if (fin != finish_reason::none) parts.push_back(ts.finish(fin, calls));
  std::vector<json> deltas;
  const auto opening = [&](json d) {  // the choice's first delta carries the role
    if (!ts.role_sent) {
      json first = {{"role", "assistant"}};
      if (!d.contains("content")) first["content"] = nullptr;
      first.update(d);
      d = std::move(first);
      ts.role_sent = true;
    }
    deltas.push_back(std::move(d));
  };
  for (tool_delta& part : parts) {
    if (!part.content.empty()) opening({{"content", std::move(part.content)}});
    for (tool_delta::call_part& c : part.calls) {
      json call = {{"index", c.index}};
      if (c.head) {
        call["id"] = new_call_id();
        call["type"] = "function";
        call["function"] = {{"name", c.name}, {"arguments", ""}};
      } else {
        call["function"] = {{"arguments", std::move(c.arguments)}};
      }
      opening({{"tool_calls", json::array({std::move(call)})}});
    }
  }
  if (fin != finish_reason::none) {
    if (!ts.role_sent) opening({{"content", ""}});
    deltas.push_back(json::object());
  }
  std::vector<std::string> chunks;
  for (size_t i = 0; i < deltas.size(); ++i) {
    const bool last = fin != finish_reason::none && i + 1 == deltas.size();
    const char* reason = !last ? nullptr : calls ? "tool_calls" : openai_finish_reason(fin);
    json choice = {{"index", index}, {"delta", std::move(deltas[i])}, {"logprobs", nullptr},
                   {"finish_reason", reason ? json(reason) : json(nullptr)}};
    json chunk = chunk_head(meta);
    chunk["choices"] = json::array({std::move(choice)});
    if (include_usage) chunk["usage"] = nullptr;
    chunks.push_back(dump_json(chunk));
  }
  return chunks;
}

json tool_delta_json(tool_delta& d, std::vector<std::string>& ids) {
  if (d.empty()) return nullptr;
  json delta = json::object();
  if (!d.content.empty()) delta["content"] = std::move(d.content);
  json calls = json::array();
  for (tool_delta::call_part& c : d.calls) {
    if (!c.head && !calls.empty() && calls.back()["index"] == c.index) {
      json& args = calls.back()["function"]["arguments"];
      args = args.get<std::string>() + c.arguments;
      continue;
    }
    json call = {{"index", c.index}};
    if (c.head) {
      ids.push_back(new_call_id());
      call["id"] = ids.back();
      call["type"] = "function";
      call["function"] = {{"name", c.name}, {"arguments", ""}};
    } else {
      call["function"] = {{"arguments", std::move(c.arguments)}};
    }
    calls.push_back(std::move(call));
  }
  if (!calls.empty()) delta["tool_calls"] = std::move(calls);
  return delta;
}

json final_response(const response_meta& meta, const generation_tracker& tracker, const text_codec* codec) {
  json choices = json::array();
  int32_t index = 0;
  for (const generation_tracker::choice& c : tracker.choices()) {
    json ch = {{"index", index}};
    if (meta.kind == api_kind::chat && meta.tool_calls) {
      auto [message, reason] = tool_message(meta, c.text, c.finish);
      ch["message"] = std::move(message);
      ch["logprobs"] = meta.logprobs >= 0 ? logprobs_json(meta.kind, c.logprobs, codec, 0) : json(nullptr);
      ch["finish_reason"] = std::move(reason);
      choices.push_back(std::move(ch));
      ++index;
      continue;
    }
    if (meta.kind == api_kind::chat && meta.separate_reasoning) {
      // As vLLM answers: content null when the answer was all reasoning, reasoning_content null
      // when there was none.
      const reasoning_split s = reasoning_parser::split(c.text, meta.reasoning_starts_open);
      ch["message"] = {{"role", "assistant"},
                       {"content", s.content.empty() && !s.reasoning.empty() ? json(nullptr) : json(s.content)},
                       {"reasoning_content", s.reasoning.empty() ? json(nullptr) : json(s.reasoning)}};
      ch["logprobs"] = meta.logprobs >= 0 ? chat_logprobs(c.logprobs, codec) : json(nullptr);
    } else if (meta.kind == api_kind::chat) {
      ch["message"] = {{"role", "assistant"}, {"content", c.text}};
      ch["logprobs"] = meta.logprobs >= 0 ? chat_logprobs(c.logprobs, codec) : json(nullptr);
    } else {
      ch["text"] = meta.echo ? prompt_text(meta, index) + c.text : c.text;
      int64_t offset = meta.echo ? 0 : meta.completion_offset(index);
      ch["logprobs"] = meta.logprobs >= 0 ? completion_choice_logprobs(meta, index, meta.echo, c.prompt_logprobs,
                                                                       c.logprobs, codec, offset)
                                          : json(nullptr);
      if (meta.prompt_logprobs >= 0) ch["prompt_logprobs"] = vllm_prompt_logprobs(c.prompt_logprobs, codec, meta.prompt_logprobs);
    }
    ch["finish_reason"] = finish_json(c.finish);
    choices.push_back(std::move(ch));
    ++index;
  }
  json body = {{"id", meta.id},
               {"object", meta.kind == api_kind::chat ? "chat.completion" : "text_completion"},
               {"created", meta.created},
               {"model", meta.model}};
  if (!meta.system_fingerprint.empty()) body["system_fingerprint"] = meta.system_fingerprint;
  body["choices"] = std::move(choices);
  if (meta.kind == api_kind::chat && meta.prompt_logprobs >= 0 && !tracker.choices().empty()) {
    body["prompt_logprobs"] = vllm_prompt_logprobs(tracker.choices()[0].prompt_logprobs, codec, meta.prompt_logprobs);
  }
  body["usage"] = usage_json(tracker.usage());
  return body;
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace troupe
