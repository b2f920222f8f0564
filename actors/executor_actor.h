// The executor actor: a detached actor (it blocks on compute) wrapping one model_backend. It runs
// one step per message and answers with the logits, or with the step's error. The backend outlives
// the actor, so a restarted executor serves the same weights and KV pool.
#pragma once

#include <memory>

#include <caf/fwd.hpp>

#include "actors/messages.h"
#include "runtime/model_backend.h"

namespace troupe {

executor_actor spawn_executor(caf::actor_system& sys, std::shared_ptr<model_backend> backend);

}  // namespace troupe
