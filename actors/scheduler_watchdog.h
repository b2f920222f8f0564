// The scheduler's watchdog: one delayed message, re-armed only while an alloc or a step is in
// flight, fails each call that outlives its limit (with async scheduling, an alloc and two steps may
// be in flight at once). CAF 0.17 never cancels a request's timeout when the
// answer arrives (its clock keeps every one until due), so a timeout per call would grow the process.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "actors/scheduler_state.h"

namespace troupe::scheduler_impl {

// Starts watching a call; `on_expiry` runs (once) if it is still in flight after `limit`.
uint64_t watch_call(sched_pointer self, std::chrono::milliseconds limit, std::function<void()> on_expiry,
                    bool is_step = false);
// The call's answer arrived: false when the watchdog has already failed it (ignore the answer).
bool end_call(sched_pointer self, uint64_t id);
// A step ended: the step queued behind it at the executor starts now, and so does its limit.
void restart_step_calls(sched_pointer self, std::chrono::milliseconds limit);
// The watchdog's message arrived: expire the call past its deadline, re-arm while one is watched.
void on_watchdog(sched_pointer self);

}  // namespace troupe::scheduler_impl
