// Token masks from the pushdown matcher: per-position tables shared by all sequences, and the
// per-sequence matcher that combines them with walks of the real stack.
#include "runtime/grammar_matcher.h"

#include <algorithm>

namespace troupe {

namespace {
// States of recent masks a matcher keeps (a mask is vocab/8 bytes).
constexpr size_t k_mask_cache_entries = 32;

void or_into(token_mask& dst, const token_mask& src) {
  const size_t n = std::min(dst.words.size(), src.words.size());
  for (size_t i = 0; i < n; ++i) dst.words[i] |= src.words[i];
}
}  // namespace

grammar_constraint::grammar_constraint(grammar g, std::shared_ptr<const grammar_vocab> vocab)
    : g_(std::move(g)), vocab_(std::move(vocab)) {}

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

const grammar_constraint::position_table& grammar_constraint::table(int32_t pos) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tables_.find(pos);
    if (it != tables_.end()) return *it->second;
  }
  // Computed outside the lock: two sequences may both compute it once; the first stored wins.
  auto t = std::make_unique<position_table>(compute_table(pos));
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = tables_.emplace(pos, std::move(t));
  return *it->second;
}

grammar_constraint::position_table grammar_constraint::compute_table(int32_t pos) const {
  position_table t;
  t.accepted.resize(vocab_->vocab_size);
  grammar_stacks local(g_);
  // Sized once: a walk at depth d reads scratch[d - 1] by reference while it fills scratch[d].
  std::vector<grammar_state> scratch(static_cast<size_t>(vocab_->max_piece) + 2);
  const auto& nodes = vocab_->nodes;
  // Depth-first over the trie; scratch[d] holds the state after the d+1'th byte.
  auto dfs = [&](auto&& self, int32_t u, const grammar_state& s, size_t d) -> void {
    const auto& un = nodes[u];
    for (int32_t c = un.first_child; c < un.first_child + un.num_children; ++c) {
      if (!local.may_take(s, nodes[c].byte)) continue;
      grammar_state& n = scratch[d];
      local.step(s, nodes[c].byte, n);
      if (!n.alive()) continue;
      for (int32_t i = nodes[c].tok_begin; i < nodes[c].tok_end; ++i) t.accepted.set(vocab_->tokens[i]);
      if (nodes[c].num_children == 0) continue;
      if (n.popped) t.resume_nodes.push_back(c);
      if (!n.tops.empty()) self(self, c, n, d + 1);
    }
  };
  const grammar_state s0 = local.at_position(pos);
  dfs(dfs, 0, s0, 0);
  return t;
}

grammar_matcher::grammar_matcher(std::shared_ptr<const grammar_constraint> c)
    : c_(std::move(c)), stacks_(c_->rules()) {
  state_ = stacks_.start();
  // Sized once: walk_subtree at depth d reads scratch_[d - 1] by reference while it fills scratch_[d].
  scratch_.resize(static_cast<size_t>(c_->vocab().max_piece) + 2);
}

bool grammar_matcher::walk(std::string_view bytes, grammar_state& s) {
  grammar_state tmp;
  for (size_t i = 0; i < bytes.size(); ++i) {
    stacks_.step(s, static_cast<uint8_t>(bytes[i]), tmp);
    if (tmp.tops.empty() && !(tmp.complete && i + 1 == bytes.size())) return false;
    std::swap(s, tmp);
  }
  return true;
}

void grammar_matcher::walk_subtree(int32_t u, const grammar_state& s, token_mask& mask, size_t d) {
  const auto& v = c_->vocab();
  const auto& un = v.nodes[u];
  for (int32_t c = un.first_child; c < un.first_child + un.num_children; ++c) {
    if (!stacks_.may_take(s, v.nodes[c].byte)) continue;
    grammar_state& n = scratch_[d];
    stacks_.step(s, v.nodes[c].byte, n);
    if (n.tops.empty() && !n.complete) continue;
    for (int32_t i = v.nodes[c].tok_begin; i < v.nodes[c].tok_end; ++i) mask.set(v.tokens[i]);
    if (!n.tops.empty() && v.nodes[c].num_children > 0) walk_subtree(c, n, mask, d + 1);
  }
}

void grammar_matcher::compute_mask(token_mask& mask) {
  mask.clear();
  const auto& v = c_->vocab();
  for (int32_t top : state_.tops) {
    const auto& table = c_->table(stacks_.pos(top));
    or_into(mask, table.accepted);
    for (int32_t r : table.resume_nodes) {
      const auto& rn = v.nodes[r];
      grammar_state s;
      s.tops.push_back(top);
      if (!walk(std::string_view(v.pieces[rn.any_token]).substr(0, rn.depth), s) || s.tops.empty()) continue;
      // The trie walk below reuses scratch_ from depth 0; keep `s` out of it.
      walk_subtree(r, s, mask, 0);
    }
  }
  if (state_.complete) {
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
    grammar_state s = state_;
    const std::string_view rest = std::string_view(v.pieces[t]).substr(1);
    if (rest.empty() || walk(rest, s)) mask.set(t);
  }
}

void grammar_matcher::fill_mask(token_mask& mask) {
  const auto& v = c_->vocab();
  if (mask.words.size() < (static_cast<size_t>(v.vocab_size) + 63) / 64) mask.resize(v.vocab_size);
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
    stored->words.assign(mask.words.begin(), mask.words.begin() + (v.vocab_size + 63) / 64);
    c_->store_start_mask(std::move(stored));
    return;
  }
  auto key = std::make_pair(state_.tops, state_.complete);
  auto it = mask_cache_.find(key);
  if (it != mask_cache_.end()) {
    std::copy(it->second.words.begin(), it->second.words.end(), mask.words.begin());
    return;
  }
  compute_mask(mask);
  if (mask_cache_.size() >= k_mask_cache_entries) mask_cache_.clear();
  token_mask copy;
  copy.words.assign(mask.words.begin(), mask.words.begin() + (v.vocab_size + 63) / 64);
  mask_cache_.emplace(std::move(key), std::move(copy));
}

bool grammar_matcher::accept(int32_t token) {
  const auto& v = c_->vocab();
  if (finished_ || token < 0 || token >= v.vocab_size) return false;
  if (std::find(v.eos_ids.begin(), v.eos_ids.end(), token) != v.eos_ids.end()) {
    if (!state_.complete) return false;
    finished_ = true;
    return true;
  }
  std::string_view piece = v.pieces[token];
  if (piece.empty()) return false;
  if (first_ && v.strips_leading_space && piece[0] == ' ') piece.remove_prefix(1);
  grammar_state s = state_;
  if (!piece.empty() && !walk(piece, s)) return false;
  state_ = std::move(s);
  first_ = false;
  return true;
}

bool grammar_matcher::accept_bytes(std::string_view bytes) {
  grammar_state s = state_;
  if (!walk(bytes, s)) return false;
  state_ = std::move(s);
  first_ = false;
  return true;
}

bool grammar_matcher::is_terminated() const { return finished_ || (state_.complete && state_.tops.empty()); }

std::unique_ptr<token_constraint> grammar_matcher::clone() const {
  return std::make_unique<grammar_matcher>(*this);
}

}  // namespace troupe
