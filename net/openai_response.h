// OpenAI response bodies: streaming chunks (text_completion / chat.completion.chunk), the final
// non-streaming body, usage and logprobs objects; and generation_tracker, which follows one
// request's choices to their end (used by HTTP and WebSocket sessions alike).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/engine.h"
#include "net/native_tool_format.h"
#include "net/tool_stream.h"
#include "runtime/reasoning_parser.h"
#include "net/openai_api.h"
#include "net/text_codec.h"

namespace troupe {

struct response_meta {
  api_kind kind = api_kind::completion;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
  std::string system_fingerprint;
  int32_t logprobs = -1;  // params.logprobs: -1 none, else top k
  int32_t n = 1;          // choices per prompt: choice i belongs to prompt i / n
  bool echo = false;
  int32_t prompt_logprobs = -1;          // vLLM's prompt_logprobs as asked (-1: not asked)
  std::vector<std::string> prompt_texts;  // [num_prompts] echo text; text_offset counts from its start
  std::vector<int32_t> first_tokens;      // [num_prompts] each prompt's first token (echo logprobs)

  int32_t num_prompts() const { return std::max<int32_t>(1, static_cast<int32_t>(prompt_texts.size())); }
  // Where choice `index`'s generated text starts in its full text: the prompt's length (OpenAI
  // counts text_offset in prompt + completion, echoed or not).
  int64_t completion_offset(int32_t index) const;
  bool separate_reasoning = false;     // chat: <think> spans go to reasoning_content
  bool reasoning_starts_open = false;  // the prompt opened the span
  bool tool_calls = false;  // the answer is a tool envelope (see net/tool_request.h)
  std::vector<std::string> tool_names;
  tool_format tool_syntax = tool_format::generic;  // how the answer's calls are written
};

response_meta make_response_meta(const openai_request& r, const std::string& request_id);

// Follows the events of one request: which choices ended, how many tokens each produced, and
// (when keep_output) the text, token ids and logprobs of each choice for a non-streaming answer.
class generation_tracker {
 public:
  struct choice {
    std::string text;
    std::vector<int32_t> token_ids;
    std::vector<token_logprobs> logprobs;
    std::vector<token_logprobs> prompt_logprobs;
    int32_t num_tokens = 0;
    finish_reason finish = finish_reason::none;
  };

  // `n` choices in all (num_prompts x choices per prompt); events carry the overall choice index.
  generation_tracker(int32_t n, int32_t num_prompt_tokens, bool keep_output, int32_t num_prompts = 1);

  // Returns false for an event of an unknown or already finished choice (ignored).
  bool add(const generation_event& ev);
  bool done() const { return num_finished_ == static_cast<int32_t>(choices_.size()); }
  bool any_tokens() const { return any_tokens_; }
  usage_info usage() const;
  const std::vector<choice>& choices() const { return choices_; }

 private:
  std::vector<choice> choices_;  // [n]
  int32_t num_finished_ = 0;
  int32_t num_prompt_tokens_ = 0;
  bool keep_output_ = false;
  bool any_tokens_ = false;
  int32_t per_prompt_ = 1;                // choices per prompt
  std::vector<usage_info> engine_usage_;  // [num_prompts] from each prompt's last final event
};

nlohmann::json usage_json(const usage_info& u);

// The text of one token for logprobs ("token_id:N" when there is no tokenizer).
std::string token_text(const text_codec* codec, int32_t token);

// completions: {"tokens","token_logprobs","top_logprobs","text_offset"} (top_logprobs best first);
// chat: {"content": [...]}. Ordered JSON: the order of top_logprobs is part of the answer.
nlohmann::ordered_json logprobs_json(api_kind kind, const std::vector<token_logprobs>& lps,
                                     const text_codec* codec, int64_t text_offset);

// One streaming chunk for an event (JSON text, no SSE framing). first_of_choice adds the chat role
// and, with echo, the prompt's text and logprobs. `text_offset` (start it at
// initial_text_offset) advances past the text this chunk carries. With `reasoning` (the event's
// text through the choice's reasoning_parser) the delta carries reasoning_content and content from
// it instead of the raw text.
std::string stream_chunk(const response_meta& meta, const generation_event& ev, const text_codec* codec,
                         bool first_of_choice, bool include_usage, int64_t& text_offset,
                         const reasoning_split* reasoning = nullptr);
// Where a choice's text_offset starts when streaming: 0 with echo, else the prompt's length.
int64_t initial_text_offset(const response_meta& meta, int32_t index);
// The last chunk when stream_options.include_usage: empty choices, usage filled.
std::string usage_chunk(const response_meta& meta, const usage_info& usage);

// A chat answer under tools: {message, finish_reason}. The message is {"role", "content": null,
// "tool_calls": [{"id": "call_...", "type": "function", "function": {"name", "arguments"}}]} with
// finish_reason "tool_calls", or {"role", "content"} when the output holds no (complete) calls.
std::pair<nlohmann::ordered_json, nlohmann::ordered_json> tool_message(const response_meta& meta,
                                                                       const std::string& text, finish_reason fin);

// A streamed choice under tools: the chunks for its next `text` in OpenAI's shape, through the
// choice's tool_stream (content as written, a call's id and name, then its arguments in fragments);
// when `fin` ends the choice, what the final parse adds and the finish_reason ("tool_calls" when
// calls were made).
std::vector<std::string> tool_stream_chunks(const response_meta& meta, int32_t index, tool_stream& ts,
                                            const std::string& text, finish_reason fin, bool include_usage);

// One tool_stream delta as one chat-shaped delta ({"content", "tool_calls"}; parts of one call
// merged), for WebSocket token frames. A call's opening part carries its id (new, appended to
// `ids`), type and name. Null when the delta is empty.
nlohmann::ordered_json tool_delta_json(tool_delta& d, std::vector<std::string>& ids);

// The whole non-streaming body.
nlohmann::ordered_json final_response(const response_meta& meta, const generation_tracker& tracker,
                                      const text_codec* codec);

std::string dump_json(const nlohmann::json& j);  // compact; invalid UTF-8 replaced, never throws
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace troupe
