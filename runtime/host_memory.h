// System memory as the CPU device sees it (the CPU executor's "device memory" for the plan).
#pragma once

#include "config/memory_plan.h"
#include "runtime/model_config.h"

namespace troupe {

// MemTotal and MemAvailable from /proc/meminfo.
device_memory host_device_memory();

// The numbers of a model the planner needs.
plan_model_shape to_plan_shape(const model_config& cfg);

// "auto" -> float32 on cpu, bfloat16 on cuda; otherwise the name itself.
std::string resolve_dtype(const std::string& dtype, const std::string& device);

// Process resident set size in bytes (from /proc/self/statm), for "measured after the first request".
uint64_t process_rss_bytes();

}  // namespace troupe
