// Test-only fault injection (--fault-inject): a model_backend decorator that sleeps before every
// forward step and fails chosen steps with device_error. The block manager's refusals live in
// block_manager_actor.cpp. Nothing here is used when the option is unset.
#pragma once

#include <memory>

#include "config/options.h"
#include "runtime/model_backend.h"

namespace troupe {

// Wraps `inner` when `f` asks for step faults (fail_step or slow_ms); returns `inner` otherwise.
std::shared_ptr<model_backend> with_step_faults(std::shared_ptr<model_backend> inner, const fault_inject_options& f);

}  // namespace troupe
