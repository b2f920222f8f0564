// The sampler's token counts (see token_counts.h). Linear probing on a multiplicative hash; the
// slot table stays at most half full so a probe is short.
#include "runtime/token_counts.h"

#include <algorithm>
#include <bit>

namespace troupe {
namespace {

size_t slot_of(int32_t token, size_t mask) {
  return static_cast<size_t>((static_cast<uint64_t>(static_cast<uint32_t>(token)) * 0x9E3779B97F4A7C15ull) >> 32) &
         mask;
}

}  // namespace

void token_counts::reserve(size_t distinct) {
  entries_.reserve(distinct);
  const size_t slots = std::bit_ceil(std::max<size_t>(16, distinct * 2));
  if (slots > slots_.size()) rehash(slots);
}

size_t token_counts::find_slot(int32_t token) const {
  const size_t mask = slots_.size() - 1;
  size_t i = slot_of(token, mask);
  while (slots_[i] >= 0 && entries_[static_cast<size_t>(slots_[i])].token != token) i = (i + 1) & mask;
  return i;
}

void token_counts::rehash(size_t slots) {
  slots_.assign(slots, -1);
  for (size_t k = 0; k < entries_.size(); ++k) slots_[find_slot(entries_[k].token)] = static_cast<int32_t>(k);
}

void token_counts::add(int32_t token, int32_t by) {
  if (token < 0) return;
  if ((entries_.size() + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
  const size_t i = find_slot(token);
  if (slots_[i] >= 0) {
    entries_[static_cast<size_t>(slots_[i])].count += by;
    return;
  }
  slots_[i] = static_cast<int32_t>(entries_.size());
  entries_.push_back({token, by});
}

bool token_counts::contains(int32_t token) const {
  return token >= 0 && !slots_.empty() && slots_[find_slot(token)] >= 0;
}

int32_t token_counts::count(int32_t token) const {
  if (token < 0 || slots_.empty()) return 0;
  const int32_t k = slots_[find_slot(token)];
  return k < 0 ? 0 : entries_[static_cast<size_t>(k)].count;
}

}  // namespace troupe
