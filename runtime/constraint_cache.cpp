// The LRU of compiled constraints.
#include "runtime/constraint_cache.h"

#include "runtime/grammar_matcher.h"

namespace troupe {

constraint_cache::constraint_cache(const tokenizer& tok, size_t capacity)
    : constraint_cache(grammar_vocab_for(tok), capacity) {}

constraint_cache::constraint_cache(std::shared_ptr<const grammar_vocab> vocab, size_t capacity)
    : vocab_(std::move(vocab)), capacity_(std::max<size_t>(capacity, 1)) {}

result<std::shared_ptr<const compiled_constraint>> constraint_cache::get(const constraint_spec& spec) {
  key k(1, static_cast<char>(spec.type));
  k += spec.strict ? 's' : 'l';
  k += spec.text;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(k);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++hits_;
      return it->second->value;
    }
    ++misses_;
  }
  // Compiled without the lock: a long compilation never blocks lookups of other specs.
  auto compiled = compile_constraint_for_vocab(spec, vocab_);
  if (!compiled.ok()) return compiled.err();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(k);
  if (it != index_.end()) {  // another thread compiled it meanwhile: keep one
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
  }
  lru_.push_front(entry{k, *compiled});
  index_.emplace(std::move(k), lru_.begin());
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().k);
    lru_.pop_back();
  }
  return *compiled;
}

size_t constraint_cache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

uint64_t constraint_cache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}

uint64_t constraint_cache::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

}  // namespace troupe
