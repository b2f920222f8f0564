// A bounded, thread-safe LRU of compiled constraints for one vocabulary, keyed by constraint_spec:
// a repeated response_format or tool schema is compiled once, and its lazily built mask tables are
// kept warm for the next request. Failed compilations are not cached.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "config/error.h"
#include "runtime/grammar_vocab.h"
#include "runtime/token_constraint.h"

namespace troupe {

class constraint_cache {
 public:
  static constexpr size_t k_default_capacity = 64;

  explicit constraint_cache(const tokenizer& tok, size_t capacity = k_default_capacity);
  constraint_cache(std::shared_ptr<const grammar_vocab> vocab, size_t capacity = k_default_capacity);

  // The compiled constraint for `spec`, compiled on a miss (outside the lock) and inserted as the
  // most recently used entry; the least recently used entry is dropped beyond the capacity.
  result<std::shared_ptr<const compiled_constraint>> get(const constraint_spec& spec);

  size_t size() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  using key = std::string;  // kind byte + strict byte + spec text
  struct entry {
    key k;
    std::shared_ptr<const compiled_constraint> value;
  };

  std::shared_ptr<const grammar_vocab> vocab_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::list<entry> lru_;  // front: most recently used
  std::unordered_map<key, std::list<entry>::iterator> index_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace troupe
