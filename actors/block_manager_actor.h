// The block-manager actor: owns the block pool of the memory plan. Leases, extends, releases,
// prefix matches and commits arrive as messages; it monitors whoever leases (the scheduler) and
// returns every block of an owner that goes down. It also holds the conversation pins, which yield
// to every allocation request before it is applied.
#pragma once

#include <caf/fwd.hpp>

#include "actors/messages.h"
#include "config/options.h"
#include "runtime/block_pool.h"

namespace troupe {

block_manager_actor spawn_block_manager(caf::actor_system& sys, block_pool_options opts);
// Test-only: with --fault-inject refuse_blocks_after=N the allocation requests after the N-th
// (non-empty ones) are answered with an out_of_memory error, refuse_blocks_count of them.
block_manager_actor spawn_block_manager(caf::actor_system& sys, block_pool_options opts, fault_inject_options faults);
// With conversation pins (the Responses API's resident KV): their budget and age (conversation_pins.h).
block_manager_actor spawn_block_manager(caf::actor_system& sys, block_pool_options opts, fault_inject_options faults,
                                        conversation_pin_options pins);

}  // namespace troupe
