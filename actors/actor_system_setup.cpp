// CAF scheduler settings for troupe's actor systems (see actor_system_setup.h).
#include "actors/actor_system_setup.h"

#include <cstddef>

#include <caf/actor_system_config.hpp>

namespace troupe {

void configure_actor_scheduler(caf::actor_system_config& cfg, const engine_options& opts) {
  cfg.set("work-stealing.moderate-poll-attempts", static_cast<size_t>(opts.actor_moderate_polls));
}

}  // namespace troupe
