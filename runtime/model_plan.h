// Plans memory for a concrete model: the shape from its config, the dtype resolved for the device,
// session_len defaulted and checked against the model's positions (a warning beyond them).
#pragma once

#include <vector>

#include "config/memory_plan.h"
#include "config/options.h"
#include "runtime/model_config.h"

namespace troupe {

// `devices` has one entry per tp rank (see devices_for_plan). Does not touch any device.
result<memory_plan> plan_for_model(const model_config& cfg, const engine_options& opts,
                                   const std::vector<device_memory>& devices);

// The devices to plan for without asking a GPU: --device-memory simulated (one per rank), or the
// host's memory split evenly over the ranks for --device cpu. For --device cuda without
// --device-memory the caller must ask the driver (actors/devices.h).
std::vector<device_memory> simulated_or_host_devices(const engine_options& opts);

}  // namespace troupe
