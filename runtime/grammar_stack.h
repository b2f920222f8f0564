// The pushdown half of the matcher: interned parse stacks over a flat grammar and the byte step.
// Design note: a stack is a node (grammar position, parent node) in a table, so stacks share their
// tails and equal stacks have equal ids; a parser state is the sorted set of stacks whose top is a
// terminal. Expanding a rule reference pushes the rest of the current alternative (or, when the
// reference is last, nothing: a tail call, so right recursion such as `x*` keeps the stack flat).
// The expansion after each terminal is memoised per node, so a byte step is a bit test and a copy.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "runtime/grammar.h"

namespace troupe {

// Nesting beyond this many stack nodes is refused (the branch dies): bounds memory per sequence.
inline constexpr int32_t k_grammar_max_stack_depth = 2048;
// Stack nodes one table may hold before new pushes are refused.
inline constexpr size_t k_grammar_max_nodes = 4u << 20;

struct grammar_state {
  std::vector<int32_t> tops;  // sorted stack node ids whose top element is a terminal
  bool complete = false;      // some parse has matched the whole grammar: the input may end here
  bool popped = false;        // some parse popped the sentinel (only in context-free walks)
  bool alive() const { return !tops.empty() || complete || popped; }
  friend bool operator==(const grammar_state&, const grammar_state&) = default;
};

class grammar_stacks {
 public:
  static constexpr int32_t k_bottom = -1;    // below the root: reaching it means "complete"
  static constexpr int32_t k_sentinel = -2;  // below a context-free walk: reaching it means "popped"
  static constexpr int32_t k_dead = -3;      // a push refused by the limits

  explicit grammar_stacks(const grammar& g) : g_(&g) {}

  // The state before any byte: the root's expansion.
  grammar_state start();
  // The state at grammar position `pos` over the sentinel (for context-free token walks).
  grammar_state at_position(int32_t pos);
  // `out` = `in` after `byte`; flags are recomputed (popped/complete only from this byte).
  void step(const grammar_state& in, uint8_t byte, grammar_state& out);
  // True when some stack in `s` may take `byte` next.
  bool may_take(const grammar_state& s, uint8_t byte) const;

  // Builds the stack positions[0] (top) over positions[1] ... over k_bottom (on_bottom) or the
  // sentinel; returns the top node (k_dead if refused).
  int32_t push_chain(const std::vector<int32_t>& positions, bool on_bottom);

  int32_t pos(int32_t node) const { return nodes_[node].pos; }
  int32_t parent(int32_t node) const { return nodes_[node].parent; }
  size_t num_nodes() const { return nodes_.size(); }

 private:
  struct node {
    int32_t pos;
    int32_t parent;
    int32_t depth;
  };
  struct expansion {
    std::vector<int32_t> tops;
    bool complete = false;
    bool popped = false;
  };
  int32_t push(int32_t pos, int32_t parent);
  // Expansion of `n` (a node, k_bottom or k_sentinel) into terminal-topped stacks, memoised.
  const expansion& expand(int32_t n, int32_t guard);
  void expand_into(int32_t n, expansion& out, int32_t guard);
  const expansion& after_terminal(int32_t n);

  const grammar* g_;
  std::vector<node> nodes_;
  std::unordered_map<uint64_t, int32_t> ids_;
  std::vector<int32_t> expansion_of_;   // [node] index into expansions_, -1 until computed
  std::vector<int32_t> after_of_;       // [node] index into expansions_ after its terminal
  std::deque<expansion> expansions_;  // a deque: references stay valid as it grows
  expansion bottom_, sentinel_, dead_;
};

// Parser states interned into ids with a lazily filled transition table: a walk over the token trie
// revisits the same few states (inside a string, every character leads back to one), so after the
// first visit a byte step is one array lookup.
class grammar_dfa {
 public:
  static constexpr int32_t k_dead = -1;  // no parse survives

  int32_t intern(const grammar_state& s);  // k_dead for a state that is not alive
  int32_t step(grammar_stacks& stacks, int32_t id, uint8_t byte);
  const grammar_state& state(int32_t id) const { return states_[id]; }
  size_t num_states() const { return states_.size(); }

 private:
  struct key_hash {
    size_t operator()(const std::vector<int32_t>& v) const {
      uint64_t h = 1469598103934665603ull;
      for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
      return static_cast<size_t>(h);
    }
  };
  std::vector<grammar_state> states_;
  std::vector<std::array<int32_t, 256>> next_;  // [state][byte]; k_unknown until computed
  std::unordered_map<std::vector<int32_t>, int32_t, key_hash> ids_;
  grammar_state scratch_;
};

}  // namespace troupe
