// Token masks from the pushdown matcher: per-position tables shared by all sequences, and the
// per-sequence matcher that combines them with walks of the real stack.
#include "runtime/grammar_matcher.h"

#include <algorithm>

namespace troupe {

namespace {
// States of recent masks a matcher keeps (a mask is vocab/8 bytes).
constexpr size_t k_mask_cache_entries = 32;
// Interned states (~1 KiB each) the shared table walker, and each matcher, keep before starting
// afresh: bounds memory per compiled constraint and per sequence.
constexpr size_t k_max_walk_states = 8192;
constexpr size_t k_max_matcher_states = 8192;

void or_into(token_mask& dst, const token_mask& src) {
  const size_t n = std::min(dst.words.size(), src.words.size());
  for (size_t i = 0; i < n; ++i) dst.words[i] |= src.words[i];
}
}  // namespace

grammar_constraint::grammar_constraint(grammar g, std::shared_ptr<const grammar_vocab> vocab)
    : g_(std::move(g)), vocab_(std::move(vocab)), walk_stacks_(g_) {}

std::unique_ptr<token_constraint> grammar_constraint::start() const {
  return std::make_unique<grammar_matcher>(shared_from_this());
}

std::shared_ptr<const token_mask> grammar_constraint::start_mask() const {
  std::lock_guard<std::mutex> lock(mu_);
  return start_mask_;
}

void grammar_constraint::store_start_mask(std::shared_ptr<const token_mask> m) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!start_mask_) start_mask_ = std::move(m);
}

std::shared_ptr<const grammar_constraint::position_table> grammar_constraint::table(
    const std::vector<int32_t>& key) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tables_.find(key);
    if (it != tables_.end()) return it->second;
  }
  // Computed outside the lock: two sequences may both compute it once; the first stored wins.
  auto t = std::make_shared<const position_table>(compute_table(key));
  std::lock_guard<std::mutex> lock(mu_);
  // Held by shared_ptr: a sequence still using a dropped table keeps it alive.
  if (tables_.size() >= k_max_tables) tables_.clear();
  auto [it, fresh] = tables_.emplace(key, std::move(t));
  return it->second;
}

grammar_constraint::position_table grammar_constraint::compute_table(const std::vector<int32_t>& context) const {
  position_table t;
  t.accepted.resize(vocab_->vocab_size);
  std::lock_guard<std::mutex> lock(walk_mu_);
  if (walk_dfa_.num_states() > k_max_walk_states || walk_stacks_.num_nodes() > k_grammar_max_nodes / 2) {
    walk_dfa_ = grammar_dfa();
    walk_stacks_ = grammar_stacks(g_);
  }
  grammar_stacks& local = walk_stacks_;
  grammar_dfa& dfa = walk_dfa_;
  const auto& nodes = vocab_->nodes;
  grammar_state s0;
  std::vector<int32_t> chain;
  for (int32_t x : context) {
    if (x >= 0) {
      chain.push_back(x);
      continue;
    }
    const int32_t top = local.push_chain(chain, x == -1);
    if (top >= 0) s0.tops.push_back(top);
    chain.clear();
  }
  std::sort(s0.tops.begin(), s0.tops.end());
  s0.tops.erase(std::unique(s0.tops.begin(), s0.tops.end()), s0.tops.end());
  // Depth-first over the trie. A state is alive when a parse continues, completed (the real
  // bottom) or popped the sentinel; tokens ending in an alive state match whatever lies below.
  auto dfs = [&](auto&& self, int32_t u, int32_t state) -> void {
    const auto& un = nodes[u];
    for (int32_t c = un.first_child; c < un.first_child + un.num_children; ++c) {
      const int32_t n = dfa.step(local, state, nodes[c].byte);
      if (n == grammar_dfa::k_dead) continue;
      for (int32_t i = nodes[c].tok_begin; i < nodes[c].tok_end; ++i) t.accepted.set(vocab_->tokens[i]);
      if (nodes[c].num_children == 0) continue;
      const grammar_state& ns = dfa.state(n);
      if (ns.popped) t.resume_nodes.push_back(c);
      if (!ns.tops.empty()) self(self, c, n);
    }
  };
  dfs(dfs, 0, dfa.intern(s0));
  return t;
}

grammar_matcher::grammar_matcher(std::shared_ptr<const grammar_constraint> c)
    : c_(std::move(c)), stacks_(c_->rules()) {
  state_ = dfa_.intern(stacks_.start());
}

int32_t grammar_matcher::walk(std::string_view bytes, int32_t state) {
  for (size_t i = 0; i < bytes.size() && state != grammar_dfa::k_dead; ++i) {
    state = dfa_.step(stacks_, state, static_cast<uint8_t>(bytes[i]));
    // Only the last byte may end in a completed parse with nothing left to match.
    if (state != grammar_dfa::k_dead && i + 1 < bytes.size() && dfa_.state(state).tops.empty()) {
      return grammar_dfa::k_dead;
    }
  }
  return state;
}

void grammar_matcher::walk_subtree(int32_t u, int32_t state, token_mask& mask) {
  const auto& v = c_->vocab();
  const auto& un = v.nodes[u];
  for (int32_t c = un.first_child; c < un.first_child + un.num_children; ++c) {
    const int32_t n = dfa_.step(stacks_, state, v.nodes[c].byte);
    if (n == grammar_dfa::k_dead) continue;
    for (int32_t i = v.nodes[c].tok_begin; i < v.nodes[c].tok_end; ++i) mask.set(v.tokens[i]);
    if (v.nodes[c].num_children > 0 && !dfa_.state(n).tops.empty()) walk_subtree(c, n, mask);
  }
}

void grammar_matcher::compute_mask(token_mask& mask) {
  mask.clear();
  const auto& v = c_->vocab();
  std::vector<int32_t> context;
  // Copied: walks below intern new states and may move dfa_'s storage.
  const grammar_state current = dfa_.state(state_);
  for (int32_t top : current.tops) {
    int32_t n = top;
    for (size_t k = 0; n >= 0 && k < grammar_constraint::k_table_context; ++k) {
      context.push_back(stacks_.pos(n));
      n = stacks_.parent(n);
    }
    context.push_back(n == grammar_stacks::k_bottom ? -1 : -2);
  }
  const auto table = c_->table(context);
  or_into(mask, table->accepted);
  for (int32_t r : table->resume_nodes) {
    const auto& rn = v.nodes[r];
    const int32_t s = walk(std::string_view(v.pieces[rn.any_token]).substr(0, rn.depth), state_);
    if (s == grammar_dfa::k_dead || dfa_.state(s).tops.empty()) continue;
    walk_subtree(r, s, mask);
  }
  if (current.complete) {
    for (int32_t e : v.eos_ids) {
      if (e >= 0 && e < v.vocab_size) mask.set(e);
    }
  }
}

void grammar_matcher::first_token_mask(token_mask& mask) {
  compute_mask(mask);
  const auto& v = c_->vocab();
  if (!v.strips_leading_space) return;
  // Decoding drops the first token's leading space, so the grammar sees the piece without it.
  for (int32_t t : v.space_tokens) {
    mask.words[static_cast<size_t>(t) >> 6] &= ~(uint64_t{1} << (t & 63));
    const std::string_view rest = std::string_view(v.pieces[t]).substr(1);
    if (rest.empty() || walk(rest, state_) != grammar_dfa::k_dead) mask.set(t);
  }
}

void grammar_matcher::fill_mask(token_mask& mask) {
  const auto& v = c_->vocab();
  const size_t words = (static_cast<size_t>(v.vocab_size) + 63) / 64;
  if (mask.words.size() < words) mask.resize(v.vocab_size);
  if (finished_) {
    mask.clear();
    for (int32_t e : v.eos_ids) {
      if (e >= 0 && e < v.vocab_size) mask.set(e);
    }
    return;
  }
  if (first_) {
    if (auto m = c_->start_mask()) {
      std::copy(m->words.begin(), m->words.end(), mask.words.begin());
      return;
    }
    first_token_mask(mask);
    auto stored = std::make_shared<token_mask>();
    stored->words.assign(mask.words.begin(), mask.words.begin() + static_cast<std::ptrdiff_t>(words));
    c_->store_start_mask(std::move(stored));
    return;
  }
  if (dfa_.num_states() > k_max_matcher_states) {
    const grammar_state keep = dfa_.state(state_);
    dfa_ = grammar_dfa();
    state_ = dfa_.intern(keep);
    mask_cache_.clear();
  }
  auto it = mask_cache_.find(state_);
  if (it != mask_cache_.end()) {
    std::copy(it->second.words.begin(), it->second.words.end(), mask.words.begin());
    return;
  }
  compute_mask(mask);
  if (mask_cache_.size() >= k_mask_cache_entries) mask_cache_.clear();
  token_mask copy;
  copy.words.assign(mask.words.begin(), mask.words.begin() + static_cast<std::ptrdiff_t>(words));
  mask_cache_.emplace(state_, std::move(copy));
}

bool grammar_matcher::accept(int32_t token) {
  const auto& v = c_->vocab();
  if (finished_ || token < 0 || token >= v.vocab_size) return false;
  if (std::find(v.eos_ids.begin(), v.eos_ids.end(), token) != v.eos_ids.end()) {
    if (!dfa_.state(state_).complete) return false;
    finished_ = true;
    return true;
  }
  std::string_view piece = v.pieces[token];
  if (piece.empty()) return false;
  if (first_ && v.strips_leading_space && piece[0] == ' ') piece.remove_prefix(1);
  const int32_t s = piece.empty() ? state_ : walk(piece, state_);
  if (s == grammar_dfa::k_dead) return false;
  state_ = s;
  first_ = false;
  return true;
}

bool grammar_matcher::accept_bytes(std::string_view bytes) {
  const int32_t s = walk(bytes, state_);
  if (s == grammar_dfa::k_dead) return false;
  state_ = s;
  first_ = false;
  return true;
}

bool grammar_matcher::is_terminated() const {
  const grammar_state& s = dfa_.state(state_);
  return finished_ || (s.complete && s.tops.empty());
}

std::unique_ptr<token_constraint> grammar_matcher::clone() const {
  return std::make_unique<grammar_matcher>(*this);
}

}  // namespace troupe
