// The scheduler's admission: every submit is checked and consumed at once; admitted requests go
// to scheduler_core, the others wait in the actor's bounded queue of response promises (FIFO,
// linear, observable) until a slot frees, their wait expires or the queue overflows (`overloaded`,
// which the listener maps to HTTP 429; `draining` to 503).
#pragma once

#include <string>

#include <caf/typed_event_based_actor.hpp>

#include "actors/scheduler_state.h"

namespace troupe::scheduler_impl {

caf::result<uint64_t> on_submit(sched_pointer self, generation_request& req, sink_actor& sink);
// Admits queued requests while slots are free (after requests ended).
void admit_from_queue(sched_pointer self);
// The tick: expires queued requests that waited past queue_timeout_s, then tries a step.
void on_tick(sched_pointer self);
// Cancels a request still waiting for admission; false when `id` is not queued.
bool cancel_queued(sched_pointer self, const std::string& id);
// Drain: every queued request is answered `draining`.
void drain_queue(sched_pointer self);

}  // namespace troupe::scheduler_impl
