// The engine's resident conversation KV, as the Responses API uses it: pin a finished response's
// prompt + output blocks under a conversation key, unpin it when the store lets the response go
// (or its socket closes), and read the pins' statistics. Messages to the block manager; pin and
// unpin never block. Kept out of engine.h so that only its users depend on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "actors/engine.h"
#include "runtime/conversation_pins.h"

namespace troupe {

class conversation_cache {
 public:
  virtual ~conversation_cache() = default;
  virtual void pin(uint64_t key, std::vector<int32_t> tokens) = 0;
  virtual void unpin(uint64_t key) = 0;
  // Bounded wait; nullopt when the block manager did not answer in time.
  virtual std::optional<conversation_pin_stats> pin_stats(std::chrono::milliseconds timeout) = 0;
};

// The engine's conversation cache, or null when it has none (a cluster router, a test double).
conversation_cache* conversation_cache_of(engine& e);

}  // namespace troupe
