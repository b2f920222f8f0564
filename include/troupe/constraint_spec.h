// What a request asks of structured outputs, as data: the kind of constraint and its text. Part of
// the public request (include/troupe/generation.h), so it travels between nodes and keys the
// compile cache; runtime/token_constraint.h compiles it into token masks.
#pragma once

#include <cstdint>
#include <string>

namespace troupe {

struct constraint_spec {
  enum class kind : uint8_t { none, json_object, json_schema, regex, choice, grammar };
  kind type = kind::none;
  // json_schema: the schema as JSON text; regex: the pattern; choice: a JSON array of strings;
  // grammar: GBNF text; json_object and none: empty.
  std::string text;
  // json_schema only: true refuses keywords the engine cannot enforce (OpenAI's strict mode);
  // false ignores them (unknown keywords and formats, bad patterns), so the output may not
  // validate on those points but the request is served.
  bool strict = true;

  bool empty() const { return type == kind::none; }
  friend bool operator==(const constraint_spec&, const constraint_spec&) = default;
};

}  // namespace troupe
