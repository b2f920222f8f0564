// The scheduler's step loop: one step in flight at a time: plan with scheduler_core -> blocks from
// the reservoir (steady decode) or one alloc at the block manager -> forward on every rank
// (scheduler_tp) -> dispatch the step's events, block commits and releases -> next step.
#pragma once

#include <chrono>

#include "actors/scheduler_state.h"

namespace troupe::scheduler_impl {

// Blocks the reservoir keeps on lease: enough for a few steps of new blocks at full batch, never
// more than an eighth of the pool (they are leased, if free to a user).
int32_t reservoir_target(const scheduler_config& cfg);
// Arms the tick (queue expiry and retries), once.
void arm_tick(sched_pointer self, std::chrono::milliseconds after);
// Sends the core's pending block commits and releases to the block manager.
void flush_blocks(sched_pointer self);
// After a step or a change of requests: events out, blocks back, ended requests forgotten, queued
// ones admitted.
void dispatch(sched_pointer self);
// Starts the next step unless one is in flight or there is no work.
void maybe_step(sched_pointer self);

}  // namespace troupe::scheduler_impl
