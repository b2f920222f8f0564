// Raw slices of JSON text that nlohmann has already accepted: where a value ends, an object
// member's value, an array's elements, and the text with the whitespace outside strings removed.
// Tool-call arguments are returned as the model wrote them (key order and escapes kept, whitespace
// dropped), which is what a stream of fragments can equal (net/tool_stream.h).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

// The end of the value that starts at s[start] (an object, array, string or scalar); npos when the
// text ends inside it.
size_t json_value_end(std::string_view s, size_t start);

// The raw text of member `key` of the object `object` (whole, valid JSON text); nullopt when absent
// or when the key is written with escapes.
std::optional<std::string_view> json_raw_member(std::string_view object, std::string_view key);

// The raw texts of the elements of the array `array` (whole, valid JSON text).
std::vector<std::string_view> json_raw_elements(std::string_view array);

// `text` without whitespace outside strings. Appends to `out`; `in_string`/`escape` carry the
// state between pieces of one value.
void json_compact_append(std::string_view text, std::string& out, bool& in_string, bool& escape);
std::string json_compact(std::string_view text);

}  // namespace troupe
