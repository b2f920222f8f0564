// Resident conversation KV: a conversation (a stored Responses API response, or the last response
// of an open Responses socket) keeps the prefix-cache blocks of its prompt + output leased under a
// holder of its own, so its next turn's prefix match finds them even when other traffic would have
// evicted them. Pins are bounded by a block budget (the plan's --session-cache-fraction), expire by
// age, and are released first, oldest first, when a lease needs blocks: a pin never makes a request
// wait or fail. Pure bookkeeping over a block_pool; the block-manager actor owns one.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/block_pool.h"

namespace troupe {

struct conversation_pin_options {
  int64_t budget_blocks = 0;  // pinned blocks at most, summed over pins (0 = pins off)
  double max_age_s = 3600;    // a pin older than this is released
};

struct conversation_pin_stats {
  int64_t num_pins = 0;
  int64_t num_pinned_blocks = 0;      // summed over pins (shared blocks counted per pin)
  int64_t budget_blocks = 0;
  int64_t num_pinned_total = 0;       // pins made
  int64_t num_released = 0;           // by unpin (store eviction, delete, socket close, next turn)
  int64_t num_expired = 0;            // by age
  int64_t num_dropped_pressure = 0;   // to make room for a lease
  int64_t num_dropped_budget = 0;     // to keep within the budget
  int64_t pin_tokens_queried = 0;     // the prefix lookups pins made (not requests' lookups)
  int64_t pin_tokens_found = 0;
};

// Design note: a pin is a block_pool holder (ids with the top bit set, never a sequence's) that
// took the conversation's cached full blocks through match_prefix, so the blocks are "used" and
// leave the LRU: nothing evicts them but a release. Budget and pressure both release whole pins,
// oldest first. Not thread-safe: the owning actor serializes access.
class conversation_pins {
 public:
  using clock = std::chrono::steady_clock;

  conversation_pins(block_pool& pool, conversation_pin_options opts);

  // Pins the cached full blocks of `tokens` (prompt then output) for conversation `key`, replacing
  // its previous pin. Returns the blocks pinned (0: nothing cached, pins off, or over budget).
  int32_t pin(uint64_t key, std::span<const int32_t> tokens, clock::time_point now);
  // Releases the pin of `key` (unknown keys are a no-op). Returns blocks released from the pin.
  int32_t unpin(uint64_t key);
  // Releases pins older than max_age_s. Returns the pins released.
  int32_t expire(clock::time_point now);
  // Releases pins, oldest first, until the pool can lease `need_blocks` or no pin is left.
  int32_t make_room(int64_t need_blocks);
  // Blocks a lease could get if every pin were released: num_available() plus blocks held by pins only.
  int64_t num_available_with_pins() const;

  int64_t num_pinned_blocks() const { return num_pinned_blocks_; }
  bool empty() const { return pins_.empty(); }
  conversation_pin_stats stats() const;

 private:
  struct pin_entry {
    uint64_t key = 0;
    holder_id holder = 0;
    int32_t num_blocks = 0;
    clock::time_point at;
  };
  using pin_list = std::list<pin_entry>;  // oldest first

  void release(pin_list::iterator it);

  block_pool& pool_;
  conversation_pin_options opts_;
  pin_list pins_;
  std::unordered_map<uint64_t, pin_list::iterator> by_key_;
  std::unordered_map<int32_t, int32_t> pin_refs_;  // block id -> pins holding it
  int64_t num_pinned_blocks_ = 0;
  uint64_t next_holder_ = 0;
  conversation_pin_stats counters_;
};

}  // namespace troupe
