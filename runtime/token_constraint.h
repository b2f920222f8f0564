// The contract between structured-output constraints (JSON Schema, regex, choices, grammars) and
// the sampler: a per-sequence matcher that says which tokens may come next and is told which one
// was sampled. The grammar engine (runtime/grammar_*) implements it; the sampler only sees this.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/error.h"

namespace troupe {

class tokenizer;

// One bit per token id: bit t lives in words[t / 64] at (t % 64).
struct token_mask {
  std::vector<uint64_t> words;

  void resize(int32_t vocab) { words.assign((static_cast<size_t>(vocab) + 63) / 64, 0); }
  void clear() { std::fill(words.begin(), words.end(), 0); }
  void set(int32_t t) { words[static_cast<size_t>(t) >> 6] |= uint64_t{1} << (t & 63); }
  bool test(int32_t t) const {
    const size_t w = static_cast<size_t>(t) >> 6;
    return w < words.size() && ((words[w] >> (t & 63)) & 1) != 0;
  }
};

// A matcher for one sequence. Not thread-safe; owned by the sequence's sampler.
class token_constraint {
 public:
  virtual ~token_constraint() = default;
  // Fills `mask` (already sized to the vocabulary) with the tokens allowed next. The end-of-sequence
  // tokens are allowed exactly when the output so far is a complete match.
  virtual void fill_mask(token_mask& mask) = 0;
  // Advances past `token`. False (state unchanged) when the token is not allowed here.
  virtual bool accept(int32_t token) = 0;
  // The output so far is a complete match and nothing else may follow (generation should stop).
  virtual bool is_terminated() const = 0;
  // A fresh matcher in the same state (for n > 1 choices forked from one prompt).
  virtual std::unique_ptr<token_constraint> clone() const = 0;
};

// What a request asks for, as data (travels in requests, keys the compile cache).
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

// A spec compiled against one tokenizer's vocabulary: immutable, shared by every sequence using it.
class compiled_constraint {
 public:
  virtual ~compiled_constraint() = default;
  virtual std::unique_ptr<token_constraint> start() const = 0;  // a matcher at the beginning
};

// Compiles `spec` for `tok` (implemented by the grammar engine). Errors are errc::invalid_argument
// with a message naming the JSON path and keyword (schemas) or the offset (regex, grammar).
result<std::shared_ptr<const compiled_constraint>> compile_constraint(const constraint_spec& spec,
                                                                      const tokenizer& tok);

}  // namespace troupe
