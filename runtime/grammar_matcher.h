// A grammar compiled against one vocabulary (compiled_constraint) and its per-sequence matcher
// (token_constraint): token masks from a byte-level pushdown matcher walked over the token trie.
// Design note: most of a mask does not depend on the stack far below the tops. A state's context is
// the grammar positions of the top k_table_context nodes of each of its stacks; one walk of the
// token trie from that context, over a sentinel, splits the vocabulary into tokens accepted whatever
// lies below (kept as a mask), tokens rejected whatever lies below (dropped), and trie nodes where a
// parse popped the sentinel with bytes left (kept as "resume" nodes). A sequence's mask is then the
// table's mask plus a walk, with the real stacks, of the subtrees under the resume nodes: inside a
// JSON string that is only tokens that close the string and more. Tables are shared by every
// sequence using the compiled grammar (computed on first use), so a cached schema's masks are
// mostly lookups; byte steps go through interned states (grammar_dfa), so a walk is array lookups.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/grammar.h"
#include "runtime/grammar_stack.h"
#include "runtime/grammar_vocab.h"
#include "runtime/token_constraint.h"

namespace troupe {

class grammar_constraint final : public compiled_constraint,
                                 public std::enable_shared_from_this<grammar_constraint> {
 public:
  struct position_table {
    token_mask accepted;               // tokens matched whatever lies below the top
    std::vector<int32_t> resume_nodes;  // trie nodes where a parse popped the top with bytes left
  };

  grammar_constraint(grammar g, std::shared_ptr<const grammar_vocab> vocab);
  std::unique_ptr<token_constraint> start() const override;

  const grammar& rules() const { return g_; }
  const grammar_vocab& vocab() const { return *vocab_; }
  // Stack nodes per stack whose positions key a table: a token popping more is resumed.
  static constexpr size_t k_table_context = 4;
  // The table of a context: per stack, the positions of its top nodes (top first) then -1 when the
  // stack ends there or -2 when it goes deeper (thread-safe; computed on first use).
  // At most k_max_tables are kept (about vocab/8 bytes each); beyond, the oldest set is dropped.
  static constexpr size_t k_max_tables = 1024;
  std::shared_ptr<const position_table> table(const std::vector<int32_t>& context) const;
  // The mask at the start (shared: every sequence starts in the same state). Empty until stored.
  std::shared_ptr<const token_mask> start_mask() const;
  void store_start_mask(std::shared_ptr<const token_mask> m) const;

 private:
  position_table compute_table(const std::vector<int32_t>& context) const;

  grammar g_;
  std::shared_ptr<const grammar_vocab> vocab_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<int32_t>, std::shared_ptr<const position_table>> tables_;
  mutable std::shared_ptr<const token_mask> start_mask_;
  // Table walks share stacks and states (guarded by walk_mu_): neighbouring contexts, such as the
  // lengths of a bounded string, reach the same states, so one table's transitions serve the next.
  mutable std::mutex walk_mu_;
  mutable grammar_stacks walk_stacks_;
  mutable grammar_dfa walk_dfa_;
};

class grammar_matcher final : public token_constraint {
 public:
  explicit grammar_matcher(std::shared_ptr<const grammar_constraint> c);
  void fill_mask(token_mask& mask) override;
  bool accept(int32_t token) override;
  bool is_terminated() const override;
  std::unique_ptr<token_constraint> clone() const override;

  // Advances over raw bytes (tests; false and unchanged when they do not match).
  bool accept_bytes(std::string_view bytes);
  bool is_complete() const { return dfa_.state(state_).complete; }  // the output so far is a full match

 private:
  void compute_mask(token_mask& mask);
  void walk_subtree(int32_t trie_node, int32_t state, token_mask& mask);
  int32_t walk(std::string_view bytes, int32_t state);  // grammar_dfa::k_dead if rejected
  void first_token_mask(token_mask& mask);

  std::shared_ptr<const grammar_constraint> c_;
  grammar_stacks stacks_;
  grammar_dfa dfa_;
  int32_t state_ = grammar_dfa::k_dead;  // id in dfa_
  bool first_ = true;      // no token accepted yet (SentencePiece strips the first token's space)
  bool finished_ = false;  // an end-of-sequence token was accepted
  // Masks of recently seen states: a string's body revisits one state token after token.
  std::unordered_map<int32_t, token_mask> mask_cache_;
};

}  // namespace troupe

namespace troupe {
// compile_constraint over an explicit vocabulary (tests, benchmarks, synthetic vocabularies).
result<std::shared_ptr<const compiled_constraint>> compile_constraint_for_vocab(
    const constraint_spec& spec, std::shared_ptr<const grammar_vocab> vocab);
}  // namespace troupe
