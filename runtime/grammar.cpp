// Lowering grammar expressions to the flat grammar, and the checks that make it safe to run:
// productive rules only, no left recursion, bounded size.
#include "runtime/grammar.h"

#include <functional>

namespace troupe {

int32_t grammar_builder::add_rule(std::string name) {
  if (g_.rule_alts.size() >= k_grammar_max_rules) over_limit_ = true;
  g_.rule_alts.emplace_back();
  g_.rule_names.push_back(std::move(name));
  return static_cast<int32_t>(g_.rule_alts.size()) - 1;
}

int32_t grammar_builder::helper_rule() {
  return add_rule("_" + std::to_string(num_helpers_++));
}

int32_t grammar_builder::class_id(const byte_set& s) {
  auto [it, fresh] = class_ids_.emplace(s.bits, static_cast<int32_t>(g_.classes.size()));
  if (fresh) g_.classes.push_back(s);
  return it->second;
}

void grammar_builder::add_alt(int32_t rule, const std::vector<grammar_elem>& alt) {
  if (over_limit_ || g_.elems.size() + alt.size() + 1 > k_grammar_max_elems) {
    over_limit_ = true;
    return;
  }
  g_.rule_alts[rule].push_back(static_cast<int32_t>(g_.elems.size()));
  g_.elems.insert(g_.elems.end(), alt.begin(), alt.end());
  g_.elems.push_back(grammar_elem{});
}

void grammar_builder::define(int32_t rule, const gexpr& body) {
  if (body.k == gexpr::kind::alt) {
    for (const gexpr& a : body.items) {
      std::vector<grammar_elem> alt;
      lower_seq(a, alt);
      add_alt(rule, alt);
    }
    return;
  }
  std::vector<grammar_elem> alt;
  lower_seq(body, alt);
  add_alt(rule, alt);
}

grammar_elem grammar_builder::as_single(const gexpr& e) {
  if (e.k == gexpr::kind::bytes) return {grammar_elem::kind::term, class_id(e.set)};
  if (e.k == gexpr::kind::ref) return {grammar_elem::kind::ref, e.rule};
  const int32_t r = helper_rule();
  define(r, e);
  return {grammar_elem::kind::ref, r};
}

void grammar_builder::lower_seq(const gexpr& e, std::vector<grammar_elem>& out) {
  if (e.k == gexpr::kind::seq) {
    for (const gexpr& x : e.items) lower_one(x, out);
  } else {
    lower_one(e, out);
  }
}

void grammar_builder::lower_one(const gexpr& e, std::vector<grammar_elem>& out) {
  if (over_limit_) return;
  if (out.size() > k_grammar_max_elems) {
    over_limit_ = true;
    return;
  }
  switch (e.k) {
    case gexpr::kind::bytes:
    case gexpr::kind::ref:
      out.push_back(as_single(e));
      return;
    case gexpr::kind::seq:
      lower_seq(e, out);
      return;
    case gexpr::kind::alt:
      out.push_back(as_single(e));
      return;
    case gexpr::kind::repeat: {
      const grammar_elem x = as_single(e.items[0]);
      if (e.min > k_grammar_max_elems || (e.max != gexpr::k_unbounded && e.max > k_grammar_max_elems)) {
        over_limit_ = true;
        return;
      }
      for (uint32_t i = 0; i < e.min && !over_limit_; ++i) out.push_back(x);
      if (e.max == gexpr::k_unbounded) {
        // star ::= x star | "" (right recursion: the matcher's tail call keeps the stack flat)
        const int32_t star = helper_rule();
        add_alt(star, {x, {grammar_elem::kind::ref, star}});
        add_alt(star, {});
        out.push_back({grammar_elem::kind::ref, star});
      } else if (e.max > e.min) {
        // opt_k ::= x opt_{k-1} | "": nested, so x{0,k} has one parse per length
        int32_t prev = -1;
        for (uint32_t k = 0; k < e.max - e.min && !over_limit_; ++k) {
          const int32_t opt = helper_rule();
          if (prev < 0) {
            add_alt(opt, {x});
          } else {
            add_alt(opt, {x, {grammar_elem::kind::ref, prev}});
          }
          add_alt(opt, {});
          prev = opt;
        }
        out.push_back({grammar_elem::kind::ref, prev});
      }
      return;
    }
  }
}

namespace {

// Rules with at least one finite expansion (a fixpoint over alternatives).
std::vector<char> productive_rules(const grammar& g) {
  std::vector<char> prod(g.rule_alts.size(), 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < g.rule_alts.size(); ++r) {
      if (prod[r]) continue;
      for (int32_t a : g.rule_alts[r]) {
        bool ok = true;
        for (int32_t i = a; g.elems[i].k != grammar_elem::kind::end; ++i) {
          if (g.elems[i].k == grammar_elem::kind::ref && !prod[g.elems[i].id]) {
            ok = false;
            break;
          }
        }
        if (ok) {
          prod[r] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  return prod;
}

std::vector<char> nullable_rules(const grammar& g) {
  std::vector<char> null(g.rule_alts.size(), 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < g.rule_alts.size(); ++r) {
      if (null[r]) continue;
      for (int32_t a : g.rule_alts[r]) {
        bool ok = true;
        for (int32_t i = a; g.elems[i].k != grammar_elem::kind::end; ++i) {
          if (g.elems[i].k == grammar_elem::kind::term || !null[g.elems[i].id]) {
            ok = false;
            break;
          }
        }
        if (ok) {
          null[r] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  return null;
}

// A rule reachable from itself without consuming a byte; -1 when none.
int32_t left_recursive_rule(const grammar& g) {
  const auto null = nullable_rules(g);
  const size_t n = g.rule_alts.size();
  std::vector<std::vector<int32_t>> edges(n);
  for (size_t r = 0; r < n; ++r) {
    for (int32_t a : g.rule_alts[r]) {
      for (int32_t i = a; g.elems[i].k == grammar_elem::kind::ref; ++i) {
        edges[r].push_back(g.elems[i].id);
        if (!null[g.elems[i].id]) break;
      }
    }
  }
  // Iterative DFS with colours: 1 on the path, 2 done.
  std::vector<uint8_t> colour(n, 0);
  std::vector<std::pair<int32_t, size_t>> path;
  for (size_t s = 0; s < n; ++s) {
    if (colour[s]) continue;
    path.emplace_back(static_cast<int32_t>(s), 0);
    colour[s] = 1;
    while (!path.empty()) {
      auto& [r, next] = path.back();
      if (next < edges[r].size()) {
        const int32_t t = edges[r][next++];
        if (colour[t] == 1) return t;
        if (colour[t] == 0) {
          colour[t] = 1;
          path.emplace_back(t, 0);
        }
      } else {
        colour[r] = 2;
        path.pop_back();
      }
    }
  }
  return -1;
}

}  // namespace

result<grammar> grammar_builder::build(int32_t root, const std::string& what) {
  if (over_limit_) {
    return make_error(errc::invalid_argument, what + ": the grammar is too large (over " +
                                             std::to_string(k_grammar_max_elems) + " elements)");
  }
  g_.root = root;
  const auto prod = productive_rules(g_);
  if (!prod[root]) {
    return make_error(errc::invalid_argument, what + ": nothing can match (the grammar has no finite string)");
  }
  for (auto& alts : g_.rule_alts) {
    std::vector<int32_t> kept;
    for (int32_t a : alts) {
      bool ok = true;
      for (int32_t i = a; g_.elems[i].k != grammar_elem::kind::end; ++i) {
        if (g_.elems[i].k == grammar_elem::kind::ref && !prod[g_.elems[i].id]) ok = false;
      }
      if (ok) kept.push_back(a);
    }
    alts = std::move(kept);
  }
  const int32_t lr = left_recursive_rule(g_);
  if (lr >= 0) {
    const std::string& name = g_.rule_names[lr];
    return make_error(errc::invalid_argument,
                 what + ": left recursion through rule \"" + name +
                     "\" (a rule that can reach itself before matching a byte; this also happens "
                     "when something that can match empty is repeated)");
  }
  return std::move(g_);
}

}  // namespace troupe
