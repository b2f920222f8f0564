// JSON Schema (and "any JSON object") to grammar. Supported: type (one or a list), properties,
// required, additionalProperties (false, or absent with properties listed: no other keys; true or a
// schema: other keys, never one of the listed names when those are plain ASCII; a bare
// {"type":"object"}: any object), enum, const, items, minItems,
// maxItems, anyOf, oneOf (as anyOf), allOf with one schema, $ref to "#..." JSON pointers with $defs
// or definitions, minLength, maxLength, format (date, time, date-time, uuid, email, ipv4), pattern
// (the regex subset of runtime/grammar_regex.h; unanchored ends match anything), and minimum,
// maximum, exclusiveMinimum, exclusiveMaximum for integers and numbers (for numbers rounded inward
// to integers: {"minimum": 0.5} generates numbers >= 1; no integer in range is refused).
// Annotations (title, description, default, examples, $schema, $id, $comment, deprecated,
// readOnly, writeOnly) are ignored. Any other keyword is refused, as OpenAI's strict mode does:
// errc::invalid_argument "$.properties.age: unsupported keyword \"patternProperties\"".
// Properties come out in the schema's order; whitespace follows runtime/grammar_json_parts.h.
// Recursion: a $ref back into a schema already being expanded is followed at most
// k_json_schema_max_recursion times, after which that branch is dropped (bounded, not refused);
// a schema with no finite instance within the bound is refused naming the $ref that was cut.
#pragma once

#include <string_view>

#include "config/error.h"
#include "runtime/grammar.h"

namespace troupe {

inline constexpr int k_json_schema_max_recursion = 8;
inline constexpr int k_json_schema_max_nesting = 64;      // schema objects nested in the text
inline constexpr int k_json_schema_max_subschemas = 20000;
inline constexpr uint32_t k_json_schema_max_count = 4096;  // maxLength, maxItems ... beyond: refused

// strict = false: unsupported keywords and formats and patterns outside the regex subset are
// ignored instead of refused (best effort, for tool schemas not marked strict).
//
// A schema text {"x-troupe-tagged": {"schema", "prefix", "suffix", "separator", "max"}} matches
// prefix + an instance of schema + suffix, up to max times (default 1) joined by separator: how the
// tool-call grammar forces a model's native call wrapper (<tool_call>...</tool_call>) around
// arguments valid against the tools' schemas. With "or": <schema>, an instance of that schema
// instead (tools together with a response_format).
inline constexpr const char* k_tagged_schema_key = "x-troupe-tagged";
result<grammar> json_schema_grammar(std::string_view schema_text, bool strict = true);
grammar json_object_grammar();  // any JSON object

}  // namespace troupe
