// response_builder, the tool half: an answer under tools as Responses events while it is generated.
// The choice's text goes through the tool_stream that chat streaming uses (net/tool_stream.h), so
// text is held back only while it could still be a call, a function_call item opens as soon as its
// name is written, and its arguments go out in the fragments the model writes.
#include "net/responses_events.h"

namespace troupe {

using json = nlohmann::json;

// Design note: the items' order is OpenAI's: the message (content before any call, or the whole
// answer) at output_index 0 when there is one, then the calls, one after the other. A call's
// arguments are whole once the next call opens (the tool_stream only opens a call after the
// previous one's closing brace and separator), so each item closes before the next opens. Content
// the stream would add after a call began is not sent (the chat stream drops it the same way).
void response_builder::on_tool_delta(tool_delta& d, std::vector<json>& out) {
  if (!d.content.empty() && !message_closed_ && calls_.empty()) {
    open_message(out);
    out.push_back(event("response.output_text.delta", {{"item_id", item_id_}, {"output_index", 0}, {"content_index", 0},
                                                       {"delta", d.content}, {"logprobs", json::array()}}));
    text_ += d.content;
  }
  for (tool_delta::call_part& c : d.calls) {
    if (c.head) {
      open_call(c.name, out);
      continue;
    }
    // Fragments come for the call the stream is in, which is the open (last) one.
    if (c.arguments.empty() || !call_open_ || static_cast<size_t>(c.index) + 1 != calls_.size()) continue;
    json& item = calls_.back();
    item["arguments"] = item["arguments"].get<std::string>() + c.arguments;
    const int64_t index = static_cast<int64_t>(message_open_) + static_cast<int64_t>(calls_.size()) - 1;
    out.push_back(event("response.function_call_arguments.delta",
                        {{"item_id", item["id"]}, {"output_index", index}, {"delta", std::move(c.arguments)}}));
  }
}

void response_builder::open_call(const std::string& name, std::vector<json>& out) {
  if (message_open_ && !message_closed_) close_message(out, finish_reason::stop);
  if (call_open_) close_call(out, "completed");
  calls_.push_back({{"type", "function_call"}, {"id", new_response_object_id("fc_")},
                    {"call_id", new_response_object_id("call_")}, {"name", name},
                    {"arguments", ""}, {"status", "in_progress"}});
  call_open_ = true;
  const int64_t index = static_cast<int64_t>(message_open_) + static_cast<int64_t>(calls_.size()) - 1;
  out.push_back(event("response.output_item.added", {{"output_index", index}, {"item", calls_.back()}}));
}

void response_builder::close_call(std::vector<json>& out, const char* item_status) {
  json& item = calls_.back();
  item["status"] = item_status;
  call_open_ = false;
  const int64_t index = static_cast<int64_t>(message_open_) + static_cast<int64_t>(calls_.size()) - 1;
  out.push_back(event("response.function_call_arguments.done",
                      {{"item_id", item["id"]}, {"output_index", index}, {"arguments", item["arguments"]}}));
  out.push_back(event("response.output_item.done", {{"output_index", index}, {"item", item}}));
}

// The final parse decides (tool_stream::finish): what it holds that was not sent goes out, then the
// open items close. Calls count only when the answer ended normally; otherwise calls already sent
// close as incomplete, and an answer without any is one message (the raw text when it was a cut call).
void response_builder::finish_tools(finish_reason fin, std::vector<json>& out) {
  tool_delta rest = tool_stream_->finish(fin, calls_ok_);
  on_tool_delta(rest, out);
  if (!calls_.empty()) {
    if (call_open_) close_call(out, calls_ok_ ? "completed" : "incomplete");
    return;
  }
  close_message(out, fin);
}

}  // namespace troupe
