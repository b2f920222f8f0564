// Building the token trie of a vocabulary, and the per-tokenizer cache of it.
#include "runtime/grammar_vocab.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <numeric>

#include "runtime/tokenizer.h"

namespace troupe {

std::shared_ptr<const grammar_vocab> grammar_vocab::from_pieces(std::vector<std::string> pieces,
                                                                std::vector<int32_t> eos_ids,
                                                                bool strips_leading_space) {
  auto v = std::make_shared<grammar_vocab>();
  v->vocab_size = static_cast<int32_t>(pieces.size());
  v->eos_ids = std::move(eos_ids);
  v->strips_leading_space = strips_leading_space;
  for (int32_t e : v->eos_ids) {
    if (e >= 0 && e < v->vocab_size) pieces[e].clear();
  }
  v->pieces = std::move(pieces);
  std::vector<int32_t> order;
  for (int32_t t = 0; t < v->vocab_size; ++t) {
    if (v->pieces[t].empty()) continue;
    order.push_back(t);
    v->max_piece = std::max(v->max_piece, static_cast<int32_t>(v->pieces[t].size()));
    if (v->pieces[t][0] == ' ') v->space_tokens.push_back(t);
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return v->pieces[a] != v->pieces[b] ? v->pieces[a] < v->pieces[b] : a < b;
  });
  // Breadth-first layout so each node's children are contiguous: a level at a time over the sorted
  // tokens, where a node is a run of tokens sharing a prefix of the node's depth.
  struct span {
    int32_t node, begin, end;
  };
  v->nodes.push_back(grammar_vocab::node{});
  std::vector<span> level{{0, 0, static_cast<int32_t>(order.size())}};
  std::vector<std::vector<int32_t>> ending(1);
  int32_t depth = 0;
  while (!level.empty()) {
    std::vector<span> next;
    for (const span& s : level) {
      auto& n = v->nodes[s.node];
      n.first_child = static_cast<int32_t>(v->nodes.size());
      if (s.begin < s.end) n.any_token = order[s.begin];
      int32_t i = s.begin;
      std::vector<int32_t>& here = ending[s.node];
      while (i < s.end && static_cast<int32_t>(v->pieces[order[i]].size()) == depth) here.push_back(order[i++]);
      while (i < s.end) {
        const uint8_t b = static_cast<uint8_t>(v->pieces[order[i]][depth]);
        int32_t j = i;
        while (j < s.end && static_cast<uint8_t>(v->pieces[order[j]][depth]) == b) ++j;
        grammar_vocab::node c;
        c.byte = b;
        c.depth = depth + 1;
        const int32_t id = static_cast<int32_t>(v->nodes.size());
        v->nodes.push_back(c);
        ending.emplace_back();
        v->nodes[s.node].num_children++;
        next.push_back({id, i, j});
        i = j;
      }
    }
    level = std::move(next);
    ++depth;
  }
  for (size_t n = 0; n < v->nodes.size(); ++n) {
    v->nodes[n].tok_begin = static_cast<int32_t>(v->tokens.size());
    v->tokens.insert(v->tokens.end(), ending[n].begin(), ending[n].end());
    v->nodes[n].tok_end = static_cast<int32_t>(v->tokens.size());
  }
  return v;
}

namespace {

uint64_t fingerprint(const tokenizer& tok) {
  uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(tok.vocab_size());
  const int32_t n = tok.vocab_size();
  for (int32_t i = 0; i < n; i += std::max(1, n / 64)) {
    for (char c : tok.token_text(i)) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  }
  return h;
}

}  // namespace

std::shared_ptr<const grammar_vocab> grammar_vocab_for(const tokenizer& tok) {
  static std::mutex mu;
  static std::map<std::pair<const tokenizer*, uint64_t>, std::weak_ptr<const grammar_vocab>> cache;
  const auto key = std::make_pair(&tok, fingerprint(tok));
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) {
      if (auto v = it->second.lock()) return v;
    }
  }
  std::vector<std::string> pieces(static_cast<size_t>(tok.vocab_size()));
  for (int32_t t = 0; t < tok.vocab_size(); ++t) {
    if (tok.is_special(t)) continue;  // control tokens never appear in constrained output
    pieces[t] = tok.token_to_piece(t);
  }
  auto v = grammar_vocab::from_pieces(std::move(pieces), tok.eos_ids(), tok.strips_leading_space());
  std::lock_guard<std::mutex> lock(mu);
  for (auto it = cache.begin(); it != cache.end();) it = it->second.expired() ? cache.erase(it) : std::next(it);
  cache[key] = v;
  return v;
}

}  // namespace troupe
