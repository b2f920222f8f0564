// Interned parse stacks and the byte step of the pushdown matcher.
#include "runtime/grammar_stack.h"

#include <algorithm>

namespace troupe {

namespace {
// Expansions nest at most this deep (chains of nullable rules); deeper branches die.
constexpr int32_t k_max_expand_recursion = 4096;

void sort_unique(std::vector<int32_t>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}
}  // namespace

int32_t grammar_stacks::push(int32_t pos, int32_t parent) {
  if (parent == k_dead) return k_dead;
  const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(pos)) << 32) | static_cast<uint32_t>(parent);
  auto it = ids_.find(key);
  if (it != ids_.end()) return it->second;
  const int32_t depth = parent >= 0 ? nodes_[parent].depth + 1 : 1;
  if (depth > k_grammar_max_stack_depth || nodes_.size() >= k_grammar_max_nodes) return k_dead;
  const int32_t id = static_cast<int32_t>(nodes_.size());
  nodes_.push_back({pos, parent, depth});
  expansion_of_.push_back(-1);
  after_of_.push_back(-1);
  ids_.emplace(key, id);
  return id;
}

const grammar_stacks::expansion& grammar_stacks::expand(int32_t n, int32_t guard) {
  if (n == k_bottom) {
    bottom_.complete = true;
    return bottom_;
  }
  if (n == k_sentinel) {
    sentinel_.popped = true;
    return sentinel_;
  }
  if (n < 0 || guard > k_max_expand_recursion) return dead_;
  if (expansion_of_[n] >= 0) return expansions_[expansion_of_[n]];
  expansion e;
  expand_into(n, e, guard);
  sort_unique(e.tops);
  expansions_.push_back(std::move(e));
  expansion_of_[n] = static_cast<int32_t>(expansions_.size()) - 1;
  return expansions_.back();
}

void grammar_stacks::expand_into(int32_t n, expansion& out, int32_t guard) {
  if (n == k_bottom) {
    out.complete = true;
    return;
  }
  if (n == k_sentinel) {
    out.popped = true;
    return;
  }
  if (n < 0 || guard > k_max_expand_recursion) return;
  const int32_t pos = nodes_[n].pos;
  const grammar_elem el = g_->elems[pos];
  if (el.k == grammar_elem::kind::term) {
    out.tops.push_back(n);
    return;
  }
  const int32_t parent = nodes_[n].parent;
  const int32_t cont = g_->elems[pos + 1].k == grammar_elem::kind::end ? parent : push(pos + 1, parent);
  for (int32_t a : g_->rule_alts[el.id]) {
    // Through the memo: ambiguous nullable chains would otherwise expand exponentially often.
    const int32_t child = g_->elems[a].k == grammar_elem::kind::end ? cont : push(a, cont);
    const expansion& e = expand(child, guard + 1);
    out.tops.insert(out.tops.end(), e.tops.begin(), e.tops.end());
    out.complete |= e.complete;
    out.popped |= e.popped;
  }
}

const grammar_stacks::expansion& grammar_stacks::after_terminal(int32_t n) {
  if (after_of_[n] >= 0) return expansions_[after_of_[n]];
  const int32_t pos = nodes_[n].pos;
  const int32_t parent = nodes_[n].parent;
  const int32_t next = g_->elems[pos + 1].k == grammar_elem::kind::end ? parent : push(pos + 1, parent);
  expansion e = expand(next, 0);
  expansions_.push_back(std::move(e));
  after_of_[n] = static_cast<int32_t>(expansions_.size()) - 1;
  return expansions_.back();
}

grammar_state grammar_stacks::start() {
  grammar_state s;
  for (int32_t a : g_->rule_alts[g_->root]) {
    if (g_->elems[a].k == grammar_elem::kind::end) {
      s.complete = true;
      continue;
    }
    const expansion& x = expand(push(a, k_bottom), 0);
    s.tops.insert(s.tops.end(), x.tops.begin(), x.tops.end());
    s.complete |= x.complete;
  }
  sort_unique(s.tops);
  return s;
}

int32_t grammar_stacks::push_chain(const std::vector<int32_t>& positions, bool on_bottom) {
  int32_t n = on_bottom ? k_bottom : k_sentinel;
  for (size_t i = positions.size(); i-- > 0;) n = push(positions[i], n);
  return n;
}

grammar_state grammar_stacks::at_position(int32_t pos) {
  grammar_state s;
  const expansion& x = expand(push(pos, k_sentinel), 0);
  s.tops = x.tops;
  s.popped = x.popped;
  return s;
}

bool grammar_stacks::may_take(const grammar_state& s, uint8_t byte) const {
  for (int32_t t : s.tops) {
    if (g_->classes[g_->elems[nodes_[t].pos].id].has(byte)) return true;
  }
  return false;
}

void grammar_stacks::step(const grammar_state& in, uint8_t byte, grammar_state& out) {
  out.tops.clear();
  out.complete = false;
  out.popped = false;
  int32_t contributors = 0;
  for (int32_t t : in.tops) {
    if (!g_->classes[g_->elems[nodes_[t].pos].id].has(byte)) continue;
    const expansion& e = after_terminal(t);
    out.tops.insert(out.tops.end(), e.tops.begin(), e.tops.end());
    out.complete |= e.complete;
    out.popped |= e.popped;
    ++contributors;
  }
  if (contributors > 1) sort_unique(out.tops);
}

namespace {
constexpr int32_t k_unknown = -2;
}

int32_t grammar_dfa::intern(const grammar_state& s) {
  if (!s.alive()) return k_dead;
  std::vector<int32_t> key = s.tops;
  key.push_back(-1 - (s.complete ? 1 : 0) - (s.popped ? 2 : 0));  // flags, below any node id
  auto it = ids_.find(key);
  if (it != ids_.end()) return it->second;
  const int32_t id = static_cast<int32_t>(states_.size());
  states_.push_back(s);
  std::array<int32_t, 256> unknown;
  unknown.fill(k_unknown);
  next_.push_back(unknown);
  ids_.emplace(std::move(key), id);
  return id;
}

int32_t grammar_dfa::step(grammar_stacks& stacks, int32_t id, uint8_t byte) {
  int32_t n = next_[id][byte];
  if (n != k_unknown) return n;
  stacks.step(states_[id], byte, scratch_);
  n = intern(scratch_);
  next_[id][byte] = n;
  return n;
}

}  // namespace troupe
