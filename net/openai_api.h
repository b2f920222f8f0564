// OpenAI-compatible request mapping: the JSON bodies of /v1/completions and /v1/chat/completions
// (and WebSocket "generate" frames) -> a validated generation_request. Every bad type, range or
// length is a 400 api_error naming the field; nothing here throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/engine.h"
#include "net/api_error.h"
#include "net/json_guard.h"
#include "net/native_tool_format.h"
#include "net/prompt_list.h"
#include "net/text_codec.h"

namespace troupe {

enum class api_kind : uint8_t { completion, chat };

// What the mapping needs to know about the served model.
struct api_context {
  const text_codec* codec = nullptr;  // may be null: token-id prompts only
  int64_t session_len = 0;            // prompt + max_tokens must fit
  int64_t vocab_size = 0;             // token ids must be below; 0 = unchecked
  int32_t max_n = 16;
  std::string model_name;
  int32_t max_json_depth = k_default_max_json_depth;  // deeper request JSON is a 400 (parse_json_body)
  logprobs_mode default_lp_mode = logprobs_mode::raw;  // --logprobs-mode; a request's logprobs_mode wins
  std::string system_fingerprint;  // build + model identity, the same for every response of a process
  bool reasoning = false;  // chat answers' <think> spans become reasoning_content (--reasoning-parser)
};

struct openai_request {
  api_kind kind = api_kind::completion;
  generation_request gen;
  std::string model;
  std::string system_fingerprint;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool chat_logprobs = false;  // chat: "logprobs": true
  bool echo = false;           // completions: the prompt prefixes the text (and its logprobs)
  int32_t prompt_logprobs = -1;  // vLLM's prompt_logprobs as asked (gen.params may ask more for echo)
  // Completions: every prompt of the request, gen.prompt_ids == prompts[0].ids. A list of K prompts
  // runs as K engine requests; choice i*n + j is prompt i's choice j.
  std::vector<prompt_item> prompts;
  // Chat with the reasoning parser on for this request (ctx.reasoning, and neither
  // chat_template_kwargs.enable_thinking nor separate_reasoning is false).
  bool separate_reasoning = false;
  bool reasoning_starts_open = false;  // the rendered prompt ends inside an opened <think>
  bool tool_calls = false;     // chat with tools (tool_choice not none): the answer is a tool envelope
  std::vector<std::string> tool_names;
  tool_format tool_syntax = tool_format::generic;  // the model's native call format, or the envelope
};

template <class T>
using api_result = std::variant<T, api_error>;

template <class T>
bool is_error(const api_result<T>& r) { return r.index() == 1; }

// Parses a request body; malformed JSON, a non-object, or nesting deeper than max_depth -> 400
// (the depth is checked before parsing: see json_guard.h).
api_result<nlohmann::json> parse_json_body(const std::string& text,
                                           int32_t max_depth = k_default_max_json_depth);

// Maps and validates a completion or chat request. `raw_body`: the text `body` was parsed from, when
// the caller has it: schemas (response_format, tools) then keep the client's property order.
api_result<openai_request> parse_openai_request(api_kind kind, const nlohmann::json& body,
                                                const api_context& ctx, std::string_view raw_body = {});

// The prompt of a /tokenize body: {"prompt": "..." | [ids]} or {"messages": [...]}.
api_result<std::vector<int32_t>> tokenize_body(const nlohmann::json& body, const api_context& ctx);

// The OpenAI name of a finish reason: stop, length; "abort" for cancelled, "error" for error.
const char* openai_finish_reason(finish_reason r);

}  // namespace troupe
