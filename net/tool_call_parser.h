// The model's answer to a request with tools, in the generic tool format: a JSON envelope
// {"tool_calls": [{"name", "arguments"}]} or {"content": "..."}. parse_tool_output turns it into
// OpenAI's shape (calls with arguments as JSON text, or plain content). Anything else, truncated
// or malformed, is returned as plain content: a model's bad output is never a server error.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace troupe {

struct parsed_tool_call {
  std::string name;
  std::string arguments;  // compact JSON text of an object
};

struct tool_output {
  bool is_calls = false;
  std::string content;                   // !is_calls: the message content
  std::vector<parsed_tool_call> calls;  // is_calls: at least one
};

// `known`: the tool names of the request; a call to any other name makes the whole output text.
tool_output parse_tool_output(std::string_view text, const std::vector<std::string>& known);

}  // namespace troupe
