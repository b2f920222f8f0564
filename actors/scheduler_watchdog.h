// The scheduler's watchdog: one delayed message, re-armed only while an alloc or a step is in
// flight, fails the call that outlives its limit. CAF 0.17 never cancels a request's timeout when the
// answer arrives (its clock keeps every one until due), so a timeout per call would grow the process.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "actors/scheduler_state.h"

namespace troupe::scheduler_impl {

// Starts watching a call; `on_expiry` runs (once) if it is still in flight after `limit`.
uint64_t watch_call(sched_pointer self, std::chrono::milliseconds limit, std::function<void()> on_expiry);
// The call's answer arrived: false when the watchdog has already failed it (ignore the answer).
bool end_call(sched_pointer self, uint64_t id);
// The watchdog's message arrived: expire the call past its deadline, re-arm while one is watched.
void on_watchdog(sched_pointer self);

}  // namespace troupe::scheduler_impl
