// The Responses API request (POST /v1/responses and the WebSocket `response.create` event): parsing
// and validation into responses_params, and the mapping of a conversation (history + input items +
// instructions) onto the chat-completions request the rest of the server already runs, so sampling,
// limits, the chat template, tools and response_format are handled by one parser. Never throws.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "net/openai_api.h"

namespace troupe {

// What a Responses request asks for, validated, before any tokenization.
struct responses_params {
  nlohmann::json input_items = nlohmann::json::array();  // normalized items, each with "type" and "id"
  nlohmann::json instructions;                           // string or null
  std::string previous_response_id;                      // empty: none
  bool store = true;
  bool stream = false;
  nlohmann::json metadata = nlohmann::json::object();  // string -> string, at most 16 pairs
  std::string truncation = "disabled";                 // "auto" drops the oldest history to fit
  nlohmann::json max_output_tokens;                    // integer or null
  nlohmann::json temperature;                          // number or null
  nlohmann::json top_p;                                // number or null
  nlohmann::json tools = nlohmann::json::array();      // Responses function tools, as sent
  nlohmann::json tool_choice = "auto";
  bool parallel_tool_calls = true;
  nlohmann::json text = {{"format", {{"type", "text"}}}};
  // Fields of the chat-completions body this request maps onto besides "messages": sampling,
  // max_completion_tokens, tools, tool_choice and response_format (chat shapes).
  nlohmann::json chat_fields = nlohmann::json::object();
  // The chat fields whose key order matters, in the client's order (JSON text; empty when there is
  // none): a json_schema's and a tool's properties are generated in the order they were sent.
  std::string ordered_chat_fields;
};

// Parses a Responses body. `websocket`: a `response.create` event ("type" and "stream" allowed,
// streaming implied). Bad types, unknown item types or unsupported features -> 400 naming the field.
// `raw`: the text `body` was parsed from, when known (keeps the client's order of schema properties).
api_result<responses_params> parse_responses_body(const nlohmann::json& body, bool websocket,
                                                  std::string_view raw = {});

// Chat messages ({"role", "content"[, "tool_calls" | "tool_call_id"]}) for normalized input items
// or output items (message, function_call, function_call_output).
nlohmann::json items_to_messages(const nlohmann::json& items);

// The generation for `p` after `history` (chat messages of the previous responses, oldest first;
// instructions of previous responses are not part of it): instructions as a system message, then
// history, then the input. With truncation "auto", the oldest history messages are dropped until
// the prompt fits. `num_history_used` tells how many history messages were kept.
api_result<openai_request> build_responses_generation(const responses_params& p, const nlohmann::json& history,
                                                      const api_context& ctx, size_t* num_history_used = nullptr);

// A new id with the given prefix ("resp_", "msg_", ...): the prefix then 32 hex digits.
std::string new_response_object_id(const char* prefix);

}  // namespace troupe
