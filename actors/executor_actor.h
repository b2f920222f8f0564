// The executor actor: a detached actor (it blocks on compute) wrapping one model_backend. It runs
// one step per message, samples the rows of sequences that carry their sampler (the reply holds
// their tokens, not B x vocab logits), and answers, or answers with the step's error. The backend
// outlives the actor, so a restarted executor serves the same weights and KV pool.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/messages.h"
#include "runtime/model_backend.h"

namespace troupe {

// `sample`: this executor answers for its step (tensor-parallel rank 0) and runs the samplers; the
// other ranks only compute (they have no rows, and a sampler must run once per step).
executor_actor spawn_executor(caf::actor_system& sys, std::shared_ptr<model_backend> backend, bool sample = true);

// The executors of one model replica, one per tensor-parallel rank, as the scheduler supervises
// them: every step goes to all ranks; a rank that fails fails the step for all (abort_step
// releases the ranks waiting for it in a collective); a rank that dies gets the whole group
// respawned over the same backends.
struct executor_group {
  int32_t size = 1;
  std::function<executor_actor(int32_t rank)> spawn;   // starts rank r's executor
  std::function<void(int64_t step_id)> abort_step;     // optional (no collectives: empty)
};

// A group of one executor per backend (backends[r] is rank r), respawnable.
executor_group make_executor_group(caf::actor_system& sys, std::vector<std::shared_ptr<model_backend>> backends,
                                   std::function<void(int64_t)> abort_step);

}  // namespace troupe
