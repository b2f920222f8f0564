// The executor actor's behaviour: forward() on its own thread; errors become caf::errors in the
// "troupe" category, exceptions from the backend too (the actor then stays alive).
#include "actors/executor_actor.h"

#include <exception>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "config/log.h"

namespace troupe {
namespace {

executor_actor::behavior_type executor(executor_actor::pointer self, std::shared_ptr<model_backend> backend) {
  return {
      [backend](step_atom, const step_batch& batch) -> caf::result<step_logits> {
        step_logits out;
        try {
          status st = backend->forward(batch, out);
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

executor_actor spawn_executor(caf::actor_system& sys, std::shared_ptr<model_backend> backend) {
  return sys.spawn<caf::detached>(executor, std::move(backend));
}

}  // namespace troupe
