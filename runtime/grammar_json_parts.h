// The JSON building blocks every JSON front end shares: whitespace, strings (with JSON escaping of
// the characters a pattern or class allows), numbers, integer ranges, string formats, and the rules
// of an arbitrary JSON value.
// Whitespace policy: no whitespace before or after the document; at most one optional space after
// '{', '[', ',' and ':' and before '}' and ']' (never a newline), so output stays compact and a
// model cannot loop on whitespace.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config/error.h"
#include "runtime/grammar.h"

namespace troupe {

// Integers are limited to 16 digits and fractions/exponents to 15/3 digits so numbers end.
inline constexpr int64_t k_json_max_integer = 9'999'999'999'999'999;

class json_parts {
 public:
  explicit json_parts(grammar_builder& b) : b_(b) {}

  gexpr ws();                     // " "?
  gexpr any_value();              // any JSON value
  gexpr any_object();             // any JSON object
  gexpr any_string();             // "..." with any content
  gexpr number();                 // any JSON number
  gexpr integer();                // any integer (16 digits at most)
  // One string character (JSON-escaped where needed) from `allowed`.
  static gexpr string_char(const codepoint_set& allowed);
  static gexpr any_string_char();
  // Integers in [lo, hi] (no leading zeros, no "-0").
  static gexpr integer_range(int64_t lo, int64_t hi);
  // Numbers in [lo, hi] with integral bounds (either may be absent), fraction allowed.
  static gexpr number_range(std::optional<int64_t> lo, std::optional<int64_t> hi);
  // The body (between quotes) of a string in `format`; nullopt if the format is unknown.
  static std::optional<gexpr> format_body(const std::string& format);

 private:
  grammar_builder& b_;
  int32_t value_ = -1, object_ = -1, array_ = -1, string_ = -1, ws_ = -1;
};

}  // namespace troupe
