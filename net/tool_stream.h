// Streaming a chat answer under tools token by token, as OpenAI does: prose or the envelope's
// content goes out as content while it is written; a call goes out as a head (index, name) once
// its name is complete, then its arguments in fragments as the model writes them (a pythonic
// call's a keyword at a time, converted to JSON). Chat chunks, /v1/ws token frames and the
// Responses function_call events are all made from it. Text is held
// back only while it could still be a call (an envelope's first key, a partial <tool_call> tag).
// At the end the final parse (the non-streamed answer) decides; what the stream has not sent of it
// is sent then, so the assembled stream equals the non-streamed message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "actors/engine.h"
#include "net/native_tool_format.h"

namespace troupe {

struct tool_delta {
  struct call_part {
    int32_t index = 0;
    bool head = false;      // the call opens here: the name is set (arguments follow in parts)
    std::string name;
    std::string arguments;  // a fragment
  };
  std::string content;
  std::vector<call_part> calls;
  bool empty() const { return content.empty() && calls.empty(); }
};

class tool_stream {
 public:
  tool_stream(tool_format format, std::vector<std::string> known);

  // The next piece of the choice's text.
  tool_delta feed(std::string_view text);
  // The choice ended: what the final parse holds that was not sent. `calls` is set when the answer
  // is tool calls (finish_reason "tool_calls").
  tool_delta finish(finish_reason fin, bool& calls);

  bool role_sent = false;  // the chunk writer's: the choice's first delta carried the role

 private:
  enum class step : uint8_t { ok, more, fail };
  enum class stage : uint8_t {
    lead, prose, envelope_key, content_colon, content_string, content_value, envelope_end, calls_open,
    call_head, call_key, call_args, call_close, after_call, next_tag, py_name, py_args, py_after, end
  };

  void run(tool_delta& out);
  step advance(tool_delta& out);
  step stream_value(std::string& out, stage next);
  step stream_string(tool_delta& out);
  step prose(tool_delta& out);
  step call_head(tool_delta& out);
  step after_call();
  step pythonic_name(tool_delta& out);
  step pythonic_argument(tool_delta& out);
  void emit_arguments(std::string frag, tool_delta& out);
  void emit_content(std::string_view s, tool_delta& out);

  tool_format format_;
  std::vector<std::string> known_;
  std::string text_;
  size_t pos_ = 0;  // scanned (and sent) up to here
  stage stage_ = stage::lead;
  bool passthrough_ = false;  // plain text: everything is content
  bool held_ = false;         // unexpected after a call began: the rest waits for finish()
  bool tagged_ = false;       // a call tag was seen: the text is a call, never plain content
  int32_t depth_ = 0;         // the value being streamed
  bool in_string_ = false, escape_ = false;
  std::string sent_content_;
  struct sent_call {
    std::string name, arguments;
  };
  std::vector<sent_call> sent_calls_;
  std::vector<std::string> py_keys_;  // the pythonic call's keywords so far (a repeat is no call)
};

}  // namespace troupe
