// The devices a plan is made for: simulated (--device-memory), the host (--device cpu), or the real
// GPUs' cudaMemGetInfo (--device cuda; one per tp rank). Lives beside the executors that own them.
#pragma once

#include <vector>

#include "config/memory_plan.h"
#include "config/options.h"

namespace troupe {

result<std::vector<device_memory>> devices_for_plan(const engine_options& opts);

}  // namespace troupe
