// The tool fields of a chat request (tools, tool_choice, parallel_tool_calls) and the generic tool
// format that lets every model call tools: the tools described in a system prompt, the output
// constrained to a JSON envelope whose schema is built from the tools' parameter schemas, and the
// history's assistant tool_calls / tool results rendered as plain messages.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/api_error.h"

namespace troupe {

struct tool_def {
  std::string name;
  std::string description;
  nlohmann::ordered_json parameters;  // a JSON Schema object ({"type": "object"} when the tool has none)
};

enum class tool_choice_mode : uint8_t { none, automatic, required, named };

struct tool_request {
  std::vector<tool_def> tools;
  tool_choice_mode choice = tool_choice_mode::none;
  std::string named;     // choice == named: the function
  bool parallel = true;  // parallel_tool_calls: more than one call per answer
  // tools + a JSON response_format: under auto the answer is calls or content in this format
  // (a JSON Schema; null: content is free text). `content_strict`: the format's strict flag.
  nlohmann::ordered_json content_schema;
  bool content_strict = true;

  // The model may (auto) or must (required, named) answer with calls.
  bool active() const { return choice != tool_choice_mode::none && !tools.empty(); }
  std::vector<std::string> names() const;
};

// Reads tools / tool_choice / parallel_tool_calls. tool_choice defaults to auto with tools and none
// without; a named function that is not among the tools is a 400 naming tool_choice.
std::optional<api_error> read_tools(const nlohmann::json& body, tool_request& out);

// tools + response_format, as OpenAI allows: a JSON format (json_object, json_schema) becomes the
// answer's content format (t.content_schema) and `so` is emptied; regex, choice and grammar with
// tools are a 400 naming their field.
struct structured_output_request;
std::optional<api_error> take_response_format(structured_output_request& so, tool_request& t);

// Puts back the client's property order into the tools' parameter schemas (the grammar follows it,
// and the body was parsed into sorted objects), from `ordered` = the same body parsed in order.
void keep_client_order(const nlohmann::ordered_json& ordered, tool_request& t);

// The JSON Schema of the answer: {"tool_calls": [one of the allowed calls, 1..(parallel ? any : 1)]},
// or under auto also {"content": string or the content_schema} (its $defs lifted to the root). Each call is {"name": const, "arguments": its schema}.
// Ordered: the grammar keeps property order, so the model writes the name before the arguments.
nlohmann::ordered_json tool_envelope_schema(const tool_request& t);

// The system prompt that describes the tools and the envelope to the model.
std::string tool_system_prompt(const tool_request& t);

// Adds the tool description to `messages` (normalized [{"role", "content"}]): appended to a
// leading system message, or a new one in front.
void add_tool_prompt(const tool_request& t, nlohmann::json& messages);

// A history message's tool parts as the generic format shows them to the model: an assistant's
// tool_calls become the envelope text after its content. Bad shapes are 400s naming messages.
std::optional<api_error> render_tool_calls_message(const nlohmann::json& msg, std::string& content);

}  // namespace troupe
