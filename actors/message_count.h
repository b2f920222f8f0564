// A process-wide count of the messages troupe's actors handle (requests, replies, events, timers),
// so a benchmark can say how many CAF messages one step costs. One relaxed atomic add per message:
// far below the cost of the message itself.
#pragma once

#include <atomic>
#include <cstdint>

namespace troupe {

extern std::atomic<uint64_t> g_messages_handled;

inline void count_message() noexcept { g_messages_handled.fetch_add(1, std::memory_order_relaxed); }
inline uint64_t messages_handled() noexcept { return g_messages_handled.load(std::memory_order_relaxed); }

}  // namespace troupe
