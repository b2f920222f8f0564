// What the CUDA driver reports about the GPUs a plan is made for (cudaMemGetInfo per rank).
#pragma once

#include <vector>

#include "config/error.h"
#include "config/memory_plan.h"

namespace troupe {

// Total and free memory of devices 0..tp-1; an error if fewer than tp devices are present.
result<std::vector<device_memory>> query_cuda_devices(int tp);

}  // namespace troupe
