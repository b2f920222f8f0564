// Llama 3.2's pythonic tool calls: `[get_weather(city="Paris", days=3), get_time()]` (the output
// format of the Llama 3.2 1B/3B and Llama 4 pythonic templates), read into OpenAI's shape: each
// call's keyword arguments as a JSON object of Python literals (strings, numbers, True/False/None,
// lists, dicts). Anything else, or a call to an unknown tool, is plain content.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "net/tool_call_parser.h"

namespace troupe {

tool_output parse_pythonic_calls(std::string_view text, const std::vector<std::string>& known);

}  // namespace troupe
