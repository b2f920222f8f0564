// A small map token id -> count for a sequence's sampler (the repetition set and the frequency and
// presence counts): open addressing over a dense list of entries, sized at admission for the tokens
// the sequence can see, so sampling a token never seen before allocates nothing in steady decode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace troupe {

class token_counts {
 public:
  struct entry {
    int32_t token = 0;
    int32_t count = 0;
  };

  // Room for `distinct` tokens without growing (the table grows by doubling beyond that).
  void reserve(size_t distinct);
  // Adds `by` to the token's count; negative ids (never a vocabulary row) are ignored.
  void add(int32_t token, int32_t by = 1);
  bool contains(int32_t token) const;
  int32_t count(int32_t token) const;
  // Every token added, once each, in the order first added.
  std::span<const entry> entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  size_t find_slot(int32_t token) const;  // its slot, or the empty slot where it would go
  void rehash(size_t slots);

  std::vector<entry> entries_;
  std::vector<int32_t> slots_;  // [power of two] index into entries_, -1: empty; at most half full
};

}  // namespace troupe
