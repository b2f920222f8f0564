// The structured-output fields of a completion or chat request -> one constraint_spec, compiled
// for the served tokenizer before the request is queued: OpenAI's response_format, vLLM's
// structured_outputs and its older guided_* aliases. Bad shapes and schemas are 400s naming the field.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "net/api_error.h"
#include "troupe/generation.h"

namespace troupe {

class text_codec;

// What the body asks for and which field said so (for error messages).
struct structured_output_request {
  constraint_spec spec;
  std::string param;  // "response_format", "structured_outputs.json", "guided_regex", ...
};

// Reads response_format ({"type": "text" | "json_object" | "json_schema", "json_schema": {"name",
// "schema", "strict"}}), structured_outputs ({"json" | "regex" | "choice" | "grammar" |
// "json_object"}) and guided_json / guided_regex / guided_choice / guided_grammar. At most one may
// ask for a constraint. Shapes are checked here; a schema's content when it is compiled.
std::optional<api_error> read_structured_output(const nlohmann::json& body, structured_output_request& out);

// Puts back the client's property order into a schema given as an object (the grammar follows it,
// and the body was parsed into sorted objects), from `ordered` = the same body parsed in order.
void keep_client_order(const nlohmann::ordered_json& ordered, structured_output_request& so);

// Compiles `so.spec` (when not empty) through the codec into req.constraint / req.compiled. A spec
// the engine refuses is a 400 carrying its message (the JSON path and keyword, or the offset).
std::optional<api_error> compile_structured_output(const text_codec* codec, const structured_output_request& so,
                                                   generation_request& req);

}  // namespace troupe
