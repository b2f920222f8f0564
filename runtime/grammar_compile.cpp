// compile_constraint: a constraint_spec to its grammar (through the front end of its kind) and then
// to a grammar_constraint over the tokenizer's vocabulary.
#include <nlohmann/json.hpp>

#include "runtime/grammar_gbnf.h"
#include "runtime/grammar_json_schema.h"
#include "runtime/grammar_matcher.h"
#include "runtime/grammar_regex.h"
#include "runtime/token_constraint.h"

namespace troupe {

namespace {

// Choices are matched whole, as given (no quoting).
result<grammar> choice_grammar(const std::string& text) {
  nlohmann::json list = nlohmann::json::parse(text, nullptr, false);
  if (list.is_discarded() || !list.is_array() || list.empty()) {
    return make_error(errc::invalid_argument, "choice: expected a non-empty JSON array of strings");
  }
  std::vector<gexpr> alts;
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string()) {
      return make_error(errc::invalid_argument, "choice[" + std::to_string(i) + "]: not a string");
    }
    alts.push_back(g_lit(list[i].get<std::string>()));
  }
  grammar_builder b;
  const int32_t root = b.add_rule("root");
  b.define(root, g_alt(std::move(alts)));
  return b.build(root, "choice");
}

result<grammar> regex_grammar(const std::string& pattern) {
  auto e = parse_regex(pattern, regex_mode::raw);
  if (!e.ok()) return e.err();
  grammar_builder b;
  const int32_t root = b.add_rule("root");
  b.define(root, *e);
  return b.build(root, "regex");
}

result<grammar> spec_grammar(const constraint_spec& spec) {
  switch (spec.type) {
    case constraint_spec::kind::json_object: return json_object_grammar();
    case constraint_spec::kind::json_schema: return json_schema_grammar(spec.text, spec.strict);
    case constraint_spec::kind::regex: return regex_grammar(spec.text);
    case constraint_spec::kind::choice: return choice_grammar(spec.text);
    case constraint_spec::kind::grammar: return gbnf_grammar(spec.text);
    case constraint_spec::kind::none: break;
  }
  return make_error(errc::invalid_argument, "no constraint to compile");
}

}  // namespace

result<std::shared_ptr<const compiled_constraint>> compile_constraint_for_vocab(
    const constraint_spec& spec, std::shared_ptr<const grammar_vocab> vocab) {
  auto g = spec_grammar(spec);
  if (!g.ok()) return g.err();
  return std::shared_ptr<const compiled_constraint>(
      std::make_shared<grammar_constraint>(std::move(*g), std::move(vocab)));
}

result<std::shared_ptr<const compiled_constraint>> compile_constraint(const constraint_spec& spec,
                                                                      const tokenizer& tok) {
  return compile_constraint_for_vocab(spec, grammar_vocab_for(tok));
}

}  // namespace troupe
