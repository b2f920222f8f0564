// Llama 3.2's pythonic tool calls: `[get_weather(city="Paris", days=3), get_time()]` (the output
// format of the Llama 3.2 1B/3B and Llama 4 pythonic templates), read into OpenAI's shape: each
// call's keyword arguments as a JSON object of Python literals (strings, numbers, True/False/None,
// lists, dicts). Anything else, or a call to an unknown tool, is plain content.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/tool_call_parser.h"

namespace troupe {

tool_output parse_pythonic_calls(std::string_view text, const std::vector<std::string>& known);

// The Python literal at the start of `s` (after whitespace) as the compact JSON the parse writes
// into arguments, and the bytes it took; nullopt when `s` holds no whole literal there (a stream
// waits for more). A number is whole only to the end of `s`: the caller checks what follows.
std::optional<std::pair<std::string, size_t>> pythonic_literal_json(std::string_view s);

// A keyword or function name's byte (letters, digits, '_', '-', '.'), as the parse reads names.
bool pythonic_name_char(char c);

// Under tool_choice required or named: GBNF text (runtime/grammar_gbnf.h) forcing a list of calls
// to the allowed tools (one when named or not parallel) with each tool's required arguments in the
// schema's order, values typed from the schema (strings, integers, numbers, booleans, enums;
// other values any Python literal). Optional arguments are left out. Empty when a required
// argument's name is no Python keyword name (then the output is not constrained).
struct tool_request;
std::string pythonic_call_grammar(const tool_request& t);

}  // namespace troupe
