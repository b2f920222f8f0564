// The executor actor's behaviour: the step's delta into its persistent batch, then forward() and
// sampling on its own thread; errors become caf::errors in the "troupe" category, exceptions from
// the backend too (the actor then stays alive).
#include "actors/executor_actor.h"

#include <exception>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/message_count.h"
#include "config/log.h"
#include "runtime/persistent_batch.h"

namespace troupe {
namespace {

executor_actor::behavior_type executor(executor_actor::pointer, std::shared_ptr<model_backend> backend, bool sample) {
  auto rows = std::make_shared<step_logits>();  // the backend's logits rows, reused every step
  // This executor's persistent batch: a restarted executor starts empty, and the scheduler resends
  // everything to it (step_batch::reset).
  auto held = std::make_shared<persistent_batch>();
  return {
      [backend, rows, held, sample](step_atom, step_batch& batch) -> caf::result<step_logits> {
        count_message();
        step_logits out;
        try {
          status st = held->apply(batch);
          if (st) st = sample ? backend->forward_sampled(batch, *rows, out) : backend->forward(batch, out);
          if (st && sample) held->record_sampled(batch, out);  // a step planned ahead may feed them
          if (!st) {
            logger("executor")->error("step failed: {}", st.err().to_string());
            return to_caf_error(st.err());
          }
        } catch (const std::exception& e) {
          logger("executor")->error("step threw: {}", e.what());
          return to_caf_error(error{errc::internal, std::string("the executor threw: ") + e.what()});
        }
        return out;
      },
  };
}

}  // namespace

executor_actor spawn_executor(caf::actor_system& sys, std::shared_ptr<model_backend> backend, bool sample) {
  return sys.spawn<caf::detached>(executor, std::move(backend), sample);
}

executor_group make_executor_group(caf::actor_system& sys, std::vector<std::shared_ptr<model_backend>> backends,
                                   std::function<void(int64_t)> abort_step) {
  executor_group g;
  g.size = static_cast<int32_t>(backends.size());
  caf::actor_system* s = &sys;
  g.spawn = [s, backends = std::move(backends)](int32_t rank) {
    return spawn_executor(*s, backends.at(static_cast<size_t>(rank)), rank == 0);  // rank 0 answers
  };
  g.abort_step = std::move(abort_step);
  return g;
}

}  // namespace troupe
