// Tool calling through the model's own chat template: which native call format a template speaks
// (Hermes/Qwen <tool_call>, Llama 3.x JSON, Mistral [TOOL_CALLS], Llama 3.2 pythonic [f(a=1)]), the template variables and
// history messages it expects (OpenAI-shaped), and the parser of each family's output. Templates
// that never mention tools keep the generic format (net/tool_request.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/tool_call_parser.h"

namespace troupe {

enum class tool_format : uint8_t { generic, hermes, llama3, mistral, pythonic };

// From the template source: it must reference `tools`, then its call syntax picks the family.
tool_format detect_tool_format(std::string_view template_source);

// The OpenAI function list as the template's `tools` variable: [{"type", "function": {...}}].
struct tool_request;
nlohmann::json template_tools(const tool_request& t);

// An assistant message's tool_calls as the template reads them: function.arguments as an object
// (OpenAI sends JSON text); Mistral's template demands 9-character alphanumeric ids, so ids are
// mapped to such (a tool message's tool_call_id too, the same way). False on a bad shape.
bool native_history_calls(const nlohmann::json& calls, tool_format f, nlohmann::json& out);
std::string native_call_id(const std::string& id, tool_format f);

// Under tool_choice required or named: the json_schema constraint text that forces the family's
// wrapper around calls whose arguments validate against the allowed tools' schemas (the
// x-troupe-tagged form of runtime/grammar_json_schema.h). Under auto with a content_schema
// (tools + response_format): those calls or an instance of the content schema.
std::string native_constraint_schema(const tool_request& t, tool_format f);

// The model's answer in its native format; anything else is plain content, never an error.
tool_output parse_native_tool_output(tool_format f, std::string_view text, const std::vector<std::string>& known);

}  // namespace troupe
