// A regular-expression subset compiled to a grammar expression: literals, '.', classes ([a-z],
// [^...], \d \w \s and their negations), escapes (\n \t \xHH \uHHHH, escaped punctuation), groups
// ((...), (?:...), (?P<n>...)), alternation, and ? * + {m} {m,} {m,n} (a trailing lazy '?' is
// ignored). The match is always whole: a leading '^' and trailing '$' are accepted and implied.
// Backreferences, lookaround, \b and flags are refused with the offset.
#pragma once

#include <string_view>

#include "config/error.h"
#include "runtime/grammar_expr.h"

namespace troupe {

enum class regex_mode : uint8_t {
  raw,          // the pattern matches the output bytes
  json_string,  // the pattern matches a JSON string's decoded content; characters come out escaped
};

inline constexpr uint32_t k_regex_max_repeat = 1000;
inline constexpr int k_regex_max_nesting = 100;

// Errors: errc::invalid_argument "regex: offset N: ...".
result<gexpr> parse_regex(std::string_view pattern, regex_mode mode);

}  // namespace troupe
