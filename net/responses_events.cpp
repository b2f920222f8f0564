// Responses API objects and stream events (see responses_events.h). Event order, per response:
// response.created, response.in_progress, response.output_item.added, response.content_part.added,
// response.output_text.delta*, response.output_text.done, response.content_part.done,
// response.output_item.done, then response.completed | response.incomplete | response.failed.
// Under tools a message (text before any call, or the answer) comes first, then per function_call
// item: response.output_item.added, response.function_call_arguments.delta*, .done,
// response.output_item.done, all while the model writes them (responses_tool_events.cpp).
#include "net/responses_events.h"

#include <ctime>

namespace troupe {

using json = nlohmann::json;

json responses_usage_json(const usage_info& u) {
  return json{{"input_tokens", u.prompt_tokens},
              {"input_tokens_details", {{"cached_tokens", u.cached_prompt_tokens}}},
              {"output_tokens", u.completion_tokens},
              {"output_tokens_details", {{"reasoning_tokens", 0}}},
              {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json responses_error_event(const api_error& e, int64_t sequence_number) {
  json code = e.code.empty() ? json(e.type) : json(e.code);
  json param = e.param.empty() ? json(nullptr) : json(e.param);
  return json{{"type", "error"},
              {"sequence_number", sequence_number},
              {"status", e.status},
              {"code", code},
              {"message", e.message},
              {"param", param},
              {"error", {{"type", e.type}, {"code", code}, {"message", e.message}, {"param", param}}}};
}

response_builder::response_builder(const responses_params& p, std::string id, std::string model)
    : params_(p), id_(std::move(id)), model_(std::move(model)), item_id_(new_response_object_id("msg_")),
      created_at_(static_cast<int64_t>(std::time(nullptr))) {
  params_.input_items = json::array();  // not echoed; keeps the copy small
}

void response_builder::expect_tool_envelope(std::vector<std::string> tool_names, tool_format format) {
  tools_ = true;
  tool_stream_.emplace(format, std::move(tool_names));
}

json response_builder::event(const char* type, json fields) {
  fields["type"] = type;
  fields["sequence_number"] = seq_++;
  return fields;
}

json response_builder::message_item(const char* item_status) const {
  json content = json::array();
  if (std::string(item_status) != "in_progress" || message_open_) {
    content.push_back({{"type", "output_text"}, {"text", text_}, {"annotations", json::array()}, {"logprobs", json::array()}});
  }
  return json{{"id", item_id_}, {"type", "message"}, {"status", item_status}, {"role", "assistant"},
              {"content", std::move(content)}};
}

json response_builder::output_items() const {
  json items = json::array();
  if (message_open_) {
    const char* item_status = message_closed_ || status_ == "completed" ? "completed"
                              : status_ == "in_progress"                ? "in_progress"
                                                                        : "incomplete";
    items.push_back(message_item(item_status));
  }
  for (const json& c : calls_) items.push_back(c);
  return items;
}

json response_builder::assistant_message() const {
  if (calls_.empty()) return json{{"role", "assistant"}, {"content", text_}};
  // Calls the answer did not end with (cut by max_output_tokens): the next turn sees the text.
  if (!calls_ok_) return json{{"role", "assistant"}, {"content", raw_text_}};
  json calls = json::array();
  for (const json& c : calls_) {
    calls.push_back({{"id", c["call_id"]}, {"type", "function"},
                     {"function", {{"name", c["name"]}, {"arguments", c["arguments"]}}}});
  }
  return json{{"role", "assistant"}, {"content", text_}, {"tool_calls", std::move(calls)}};
}

json response_builder::object() const {
  json r = {{"id", id_},
            {"object", "response"},
            {"created_at", created_at_},
            {"status", status_},
            {"background", false},
            {"error", error_},
            {"incomplete_details", incomplete_details_},
            {"instructions", params_.instructions},
            {"max_output_tokens", params_.max_output_tokens},
            {"model", model_},
            {"output", output_items()},
            {"parallel_tool_calls", params_.parallel_tool_calls},
            {"previous_response_id", params_.previous_response_id.empty() ? json(nullptr) : json(params_.previous_response_id)},
            {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
            {"store", params_.store},
            {"temperature", params_.temperature.is_null() ? json(1.0) : params_.temperature},
            {"text", params_.text},
            {"tool_choice", params_.tool_choice},
            {"tools", params_.tools},
            {"top_p", params_.top_p.is_null() ? json(1.0) : params_.top_p},
            {"truncation", params_.truncation},
            {"usage", has_usage_ ? responses_usage_json(usage_) : json(nullptr)},
            {"user", nullptr},
            {"metadata", params_.metadata}};
  return r;
}

std::vector<json> response_builder::start() {
  std::vector<json> out;
  out.push_back(event("response.created", {{"response", object()}}));
  out.push_back(event("response.in_progress", {{"response", object()}}));
  return out;
}

void response_builder::open_message(std::vector<json>& out) {
  if (message_open_) return;
  out.push_back(event("response.output_item.added", {{"output_index", 0}, {"item", message_item("in_progress")}}));
  message_open_ = true;
  out.push_back(event("response.content_part.added",
                      {{"item_id", item_id_}, {"output_index", 0}, {"content_index", 0},
                       {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}, {"logprobs", json::array()}}}}));
}

void response_builder::close_message(std::vector<json>& out, finish_reason fin) {
  open_message(out);
  const char* item_status = fin == finish_reason::stop ? "completed" : "incomplete";
  message_closed_ = fin == finish_reason::stop;
  const json part = {{"type", "output_text"}, {"text", text_}, {"annotations", json::array()}, {"logprobs", json::array()}};
  out.push_back(event("response.output_text.done", {{"item_id", item_id_}, {"output_index", 0}, {"content_index", 0},
                                                    {"text", text_}, {"logprobs", json::array()}}));
  out.push_back(event("response.content_part.done",
                      {{"item_id", item_id_}, {"output_index", 0}, {"content_index", 0}, {"part", part}}));
  out.push_back(event("response.output_item.done", {{"output_index", 0}, {"item", message_item(item_status)}}));
}

std::vector<json> response_builder::on_event(const generation_event& ev) {
  std::vector<json> out;
  if (done() || ev.index != 0) return out;
  output_ids_.insert(output_ids_.end(), ev.token_ids.begin(), ev.token_ids.end());
  raw_text_ += ev.text;
  if (tools_) {
    if (!ev.text.empty()) {
      tool_delta d = tool_stream_->feed(ev.text);
      on_tool_delta(d, out);
    }
  } else if (!ev.text.empty()) {
    open_message(out);
    out.push_back(event("response.output_text.delta", {{"item_id", item_id_}, {"output_index", 0}, {"content_index", 0},
                                                       {"delta", ev.text}, {"logprobs", json::array()}}));
    text_ += ev.text;
  }
  if (ev.finish == finish_reason::none) return out;
  usage_ = ev.usage;
  if (usage_.completion_tokens < static_cast<int32_t>(output_ids_.size())) {
    usage_.completion_tokens = static_cast<int32_t>(output_ids_.size());
  }
  has_usage_ = true;
  if (ev.finish == finish_reason::error) {
    api_error e{500, "the generation failed", "server_error", {}, "server_error"};
    return fail(e);
  }
  if (tools_) {
    finish_tools(ev.finish, out);
  } else {
    close_message(out, ev.finish);
  }
  if (ev.finish == finish_reason::stop) {
    status_ = "completed";
  } else if (ev.finish == finish_reason::length) {
    status_ = "incomplete";
    incomplete_details_ = {{"reason", "max_output_tokens"}};
  } else {
    status_ = "cancelled";
  }
  out.push_back(event(status_ == "completed" ? "response.completed" : "response.incomplete", {{"response", object()}}));
  return out;
}

std::vector<json> response_builder::fail(const api_error& e) {
  std::vector<json> out;
  if (done()) return out;  // a response ends once
  status_ = "failed";
  error_ = {{"code", e.code.empty() ? e.type : e.code}, {"message", e.message}};
  out.push_back(event("response.failed", {{"response", object()}}));
  return out;
}

}  // namespace troupe
