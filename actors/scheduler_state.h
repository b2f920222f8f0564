// The scheduler actor's state, shared by the files that implement its behaviour: admission
// (scheduler_admission), the watchdog (scheduler_watchdog), the step loop (scheduler_step_loop),
// tensor-parallel supervision (scheduler_tp) and the handlers (scheduler_actor.cpp). Internal to
// actors/: nothing outside the scheduler includes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/scheduler_actor.h"
#include "actors/scheduler_registry.h"
#include "runtime/block_reservoir.h"

namespace troupe::scheduler_impl {

using clock_type = std::chrono::steady_clock;

struct queued_request {
  generation_request req;
  sink_actor sink;
  caf::typed_response_promise<uint64_t> rp;
  clock_type::time_point since;
};

// An alloc or a step in flight, with its deadline.
struct watched_call {
  uint64_t id = 0;
  clock_type::time_point deadline;
  std::function<void()> on_expiry;
  bool is_step = false;
};

constexpr std::chrono::milliseconds alloc_timeout{30000};

struct step_gather;  // the answers of all ranks to one step (scheduler_tp.cpp)

// A step sent to the executors, in send order: its answers and its watchdog call.
struct sent_step {
  std::shared_ptr<step_gather> gather;
  uint64_t call = 0;
};

struct scheduler_state {
  scheduler_config cfg;
  std::unique_ptr<scheduler_core> core;
  block_manager_actor bm;
  executor_group group;
  std::vector<executor_actor> execs;  // [rank]
  std::shared_ptr<std::vector<executor_actor>> exec_handles;  // shared with the exit functor
  bool group_broken = false;          // a rank died: respawn the group once no step is in flight
  int64_t next_step_id = 0;
  std::deque<queued_request> queue;
  scheduler_registry requests;  // queued ids, admitted requests by handle, id and sink
  block_reservoir reservoir{0, 0};  // pre-leased blocks for decode steps (see step_from_reservoir)
  bool available_stale = false;     // releases sent since `available` was last answered
  // One step's events: the core's, swapped out (its buffers reused every step), then one batch per
  // sink, each allocated at its exact size (it leaves with the message).
  event_batch events;
  std::vector<std::pair<sink_actor, event_batch>> batches;
  std::unordered_map<caf::actor_addr, size_t> batch_of;  // sink -> index in batches
  std::vector<size_t> batch_slot;  // [events] each event's index in batches (reused)
  struct batch_count {
    size_t entries = 0, tokens = 0, text = 0, details = 0;
  };
  std::vector<batch_count> batch_size;  // [batches] what each batch holds (reused)
  int64_t available = 0;
  int32_t steps_in_flight = 0;  // sent to the executors, not yet answered (2: one queued behind the other)
  std::vector<sent_step> sent;  // [steps_in_flight], oldest first
  bool allocating = false;      // a planned step waits for the block manager's blocks
  bool tick_armed = false;
  bool watchdog_armed = false;
  std::vector<watched_call> calls;  // in flight: at most an alloc and two steps
  uint64_t next_call_id = 1;
  bool draining = false;
  uint64_t next_auto_id = 1;
  int64_t num_steps = 0;
  int64_t num_step_failures = 0;
  int64_t num_steps_ahead = 0;  // steps sent while another was in flight (async scheduling)
  int32_t alloc_failures_in_a_row = 0;   // reset by every allocation that is answered
  int64_t num_alloc_failures = 0;
  int64_t num_alloc_failed_requests = 0;
  clock_type::time_point last_step = clock_type::now();
  static inline const char* name = "scheduler";
};

using sched_pointer = scheduler_actor::stateful_pointer<scheduler_state>;

}  // namespace troupe::scheduler_impl
