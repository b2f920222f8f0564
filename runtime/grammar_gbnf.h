// GBNF grammar text (llama.cpp's format) to grammar: `name ::= ...` rules, `root` as the start,
// alternation `|`, sequences, "literals" and [character classes] (with ^, ranges and escapes
// \n \r \t \\ \" \] \- \xHH \uHHHH \UHHHHHHHH), `.` (any character), groups ( ), postfix * + ?
// {m} {m,} {m,n}, and # comments. A rule continues over newlines inside parentheses and after
// `::=` or `|`. Errors: errc::invalid_argument "grammar: offset N: ..." or naming the rule.
#pragma once

#include <string_view>

#include "config/error.h"
#include "runtime/grammar.h"

namespace troupe {

result<grammar> gbnf_grammar(std::string_view text);

}  // namespace troupe
