// The Responses API objects and stream events of one response: the response object (status,
// output items, usage with cached_tokens, incomplete_details, error), and the streaming events in
// OpenAI's order with a sequence_number, built from the engine's generation events. The same events
// go out as SSE (POST stream: true) and as WebSocket frames. Not thread-safe: one per response.
// Under tools the answer goes through net/tool_stream as it is generated (responses_tool_events.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/engine.h"
#include "net/api_error.h"
#include "net/responses_api.h"
#include "net/tool_stream.h"

namespace troupe {

class response_builder {
 public:
  response_builder(const responses_params& p, std::string id, std::string model);

  const std::string& id() const { return id_; }
  // The generation answers under tools (tool_choice not none) in `format`: its text streams through
  // a tool_stream into a message (text before any call, or a plain answer) and function_call items,
  // each opened as soon as its name is written and its arguments sent as they are generated.
  void expect_tool_envelope(std::vector<std::string> tool_names, tool_format format = tool_format::generic);
  // response.created, response.in_progress: before any other event.
  std::vector<nlohmann::json> start();
  // Events for one engine event (deltas, and the closing events on its final one).
  std::vector<nlohmann::json> on_event(const generation_event& ev);
  // The response failed after start (engine error): response.failed.
  std::vector<nlohmann::json> fail(const api_error& e);

  bool started() const { return seq_ > 0; }
  bool done() const { return status_ != "in_progress"; }
  const std::string& status() const { return status_; }
  const std::string& text() const { return text_; }
  const std::vector<int32_t>& output_ids() const { return output_ids_; }
  const usage_info& usage() const { return usage_; }
  // The response object as it stands (the final one once done()).
  nlohmann::json object() const;
  // The output items (message with output_text, or function_call items), as the final object holds them.
  nlohmann::json output_items() const;
  // The output as one chat message for the conversation a next turn continues: the text, or the
  // calls as assistant tool_calls whose ids are the call_ids (function_call_output refers to them).
  nlohmann::json assistant_message() const;

 private:
  nlohmann::json event(const char* type, nlohmann::json fields);
  nlohmann::json message_item(const char* item_status) const;
  void open_message(std::vector<nlohmann::json>& out);  // output_item.added + content_part.added
  void close_message(std::vector<nlohmann::json>& out, finish_reason fin);
  // The tool half (responses_tool_events.cpp): one tool_stream delta as events, and the end.
  void on_tool_delta(tool_delta& d, std::vector<nlohmann::json>& out);
  void open_call(const std::string& name, std::vector<nlohmann::json>& out);
  void close_call(std::vector<nlohmann::json>& out, const char* item_status);
  void finish_tools(finish_reason fin, std::vector<nlohmann::json>& out);

  responses_params params_;
  std::string id_;
  std::string model_;
  std::string item_id_;
  int64_t created_at_ = 0;
  int64_t seq_ = 0;
  std::string status_ = "in_progress";
  std::string text_;      // the message's text (under tools: its content, as sent)
  std::string raw_text_;  // the generation's text as written
  std::vector<int32_t> output_ids_;
  bool message_open_ = false;
  bool message_closed_ = false;  // under tools: a call followed the message
  usage_info usage_;
  bool has_usage_ = false;
  nlohmann::json incomplete_details_;  // null or {"reason": ...}
  nlohmann::json error_;               // null or {"code", "message"}
  bool tools_ = false;
  std::optional<tool_stream> tool_stream_;
  // function_call items in output order, after the message if there is one; all but the last are
  // closed (their arguments are whole once the next call opens).
  nlohmann::json calls_ = nlohmann::json::array();
  bool call_open_ = false;
  bool calls_ok_ = false;  // the answer ended as calls (finish_reason stop and a whole parse)
};

// The usage object of the Responses API (input/output tokens, cached_tokens).
nlohmann::json responses_usage_json(const usage_info& u);

// An `error` event (WebSocket, or SSE before a response exists): OpenAI's shape, flat code/message/param
// plus the nested error object, with a sequence_number.
nlohmann::json responses_error_event(const api_error& e, int64_t sequence_number);

}  // namespace troupe
