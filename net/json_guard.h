// Bounds on untrusted JSON: the nesting depth of a request text, checked before nlohmann parses it
// (a deep value would overflow the stack of any recursive copy, dump or template walk of it later),
// and a short description of a client value for error messages: never a dump() of client data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace troupe {

constexpr int32_t k_default_max_json_depth = 64;

// The deepest nesting of [ and { outside strings in `text` ("1" is 0, "[1]" is 1, "{"a":[]}" is 2).
// Stops scanning as soon as the depth passes `limit` (returns limit + 1 then). Malformed text is
// measured as far as it goes; the parser rejects it afterwards.
int32_t json_nesting_depth(std::string_view text, int32_t limit);

// At most ~100 characters naming a client value: the number or boolean itself, a quoted prefix of
// a string, or "a list of N items" / "an object" (containers are never printed).
std::string describe_json(const nlohmann::json& v);

}  // namespace troupe
