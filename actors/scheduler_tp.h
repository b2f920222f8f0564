// The scheduler's tensor-parallel supervision: it spawns the group's executors (one per rank),
// monitors them and respawns the whole group when a rank dies; each step goes to every rank and
// completes when all answered (rank 0's logits).
#pragma once

#include <caf/actor_addr.hpp>
#include <caf/system_messages.hpp>

#include "actors/scheduler_state.h"

namespace troupe::scheduler_impl {

// Starts a fresh executor for every rank (at start-up and after a rank died). The old ones are
// idle (no step in flight) and told to quit; a late down message from them is ignored.
void spawn_group(sched_pointer self);
// Sends `batch` to every rank under the watchdog; the answers finish the step (scheduler_step_loop).
void run_step(sched_pointer self, step_batch batch);
// A down message: true when it was a current rank's (the group is respawned, now or once no step
// is in flight); false when it is someone else's (a sink).
bool on_rank_down(sched_pointer self, const caf::down_msg& dm);

}  // namespace troupe::scheduler_impl
