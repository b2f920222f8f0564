// How troupe configures CAF's scheduler before an actor system starts: every actor system of a
// serving process (engine, cluster router, worker, extension host) goes through here, and so does
// bench_scheduler_overhead, so the bench measures what serving runs.
#pragma once

#include <caf/fwd.hpp>

#include "config/options.h"

namespace troupe {

// Design note: CAF 0.17's work-stealing worker, once its queue is empty, polls 100 times without
// pause (aggressive), then `moderate-poll-attempts` times with a 50 µs sleep between polls
// (moderate; a sleep the sender cannot cut short, and Linux's 50 µs timer slack makes it ~100 µs),
// and only then waits on a condition variable that a message's enqueue signals (relaxed). A decode
// step is a few message hops (scheduler -> executor thread -> scheduler -> event sink), each of
// which lands on an idle worker, so the moderate phase cost ~80 µs per step at batch 1. Skipping it
// (0 polls) blocks on the condition variable right after the aggressive phase: a hop costs a futex
// wake, and an idle server still does not spin (the relaxed phase's 10 ms timeouts, as before).
void configure_actor_scheduler(caf::actor_system_config& cfg, const engine_options& opts);

}  // namespace troupe
