// The flat byte-level context-free grammar the matcher runs on, and the builder that lowers grammar
// expressions (runtime/grammar_expr.h) into it. A rule is a list of alternatives; an alternative
// is a run of elements in `elems` (a byte-set terminal or a rule reference) closed by an `end`.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/error.h"
#include "runtime/grammar_expr.h"

namespace troupe {

struct grammar_elem {
  enum class kind : uint8_t { term, ref, end };
  kind k = kind::end;
  int32_t id = -1;  // term: index into grammar::classes; ref: rule id
};

struct grammar {
  std::vector<grammar_elem> elems;
  std::vector<std::vector<int32_t>> rule_alts;  // [rule] start index in elems of each alternative
  std::vector<byte_set> classes;                // terminal byte sets, deduplicated
  std::vector<std::string> rule_names;          // [rule] for error messages
  int32_t root = 0;
};

// Limits that keep a hostile spec from exhausting memory at compile time.
inline constexpr size_t k_grammar_max_elems = 1u << 20;
inline constexpr size_t k_grammar_max_rules = 1u << 18;

class grammar_builder {
 public:
  int32_t add_rule(std::string name);           // a rule without alternatives yet
  void define(int32_t rule, const gexpr& body);  // adds the alternatives of `body` to `rule`
  int32_t num_rules() const { return static_cast<int32_t>(g_.rule_alts.size()); }
  bool over_limit() const { return over_limit_; }

  // Finishes the grammar: alternatives that can never match (they use a rule with no finite
  // expansion) are dropped; an unproductive root, left recursion (which a top-down matcher cannot
  // run) or a size over the limits is an errc::invalid_argument. `what` prefixes the messages.
  result<grammar> build(int32_t root, const std::string& what);

 private:
  void lower_seq(const gexpr& e, std::vector<grammar_elem>& out);
  void lower_one(const gexpr& e, std::vector<grammar_elem>& out);
  grammar_elem as_single(const gexpr& e);  // one element matching `e` (a helper rule if needed)
  int32_t helper_rule();
  int32_t class_id(const byte_set& s);
  void add_alt(int32_t rule, const std::vector<grammar_elem>& alt);

  grammar g_;
  std::map<std::array<uint64_t, 4>, int32_t> class_ids_;
  bool over_limit_ = false;
  int32_t num_helpers_ = 0;
};

}  // namespace troupe
