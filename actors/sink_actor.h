// The per-request sink actor: submits its request to the scheduler, then hands every event to the
// caller's callbacks (on this actor's thread) until each choice has finished or the request fails.
// It watches the scheduler, so a request never waits forever on a scheduler that went away, and
// stops watching when it ends, so a finished sink is freed at once.
#pragma once

#include <caf/fwd.hpp>

#include "actors/engine.h"
#include "actors/messages.h"

namespace troupe {

sink_actor spawn_sink(caf::actor_system& sys, scheduler_actor scheduler, generation_request req,
                      event_callback on_event, error_callback on_error, std::chrono::milliseconds submit_timeout);

}  // namespace troupe
