// The scheduler actor: admission with backpressure at its own inbox (at most
// max_concurrent_requests in flight; a bounded admission queue of response promises with a wait
// limit; `overloaded` beyond), and the step loop: plan with scheduler_core, one block request to the
// block manager, one forward pass on the executor, then events to each request's sink actor.
#pragma once

#include <functional>
#include <memory>

#include <caf/fwd.hpp>

#include "actors/executor_actor.h"
#include "actors/messages.h"
#include "runtime/scheduler_core.h"

namespace troupe {

class tokenizer;

struct scheduler_config {
  scheduler_limits limits;
  int32_t max_concurrent_requests = 256;
  int32_t max_queued_requests = 1024;
  double queue_timeout_s = 30.0;
  int32_t step_timeout_ms = 600000;
  // Allocations that may fail in a row (each retried after 5 ms) before the requests waiting for
  // blocks fail: a block manager that keeps refusing must not keep them waiting forever.
  int32_t max_alloc_failures = 200;
  // KV blocks the scheduler keeps pre-leased for decode steps, so those never wait for the block
  // manager (-1: automatic, from max_batch_size and the pool; 0: none, every step asks it).
  int32_t reservoir_blocks = -1;
  // Async scheduling (vLLM's --async-scheduling): with one executor, the next step is planned and
  // queued at the executor while the current one runs (runtime/scheduler_core.h). Needs an executor
  // that samples and keeps its tokens (spawn_executor with sample = true; it does by default).
  bool async_scheduling = true;
  int32_t max_n = 64;
  int64_t vocab_size = 0;
  std::vector<int32_t> eos_ids;
};

// The scheduler spawns the group's executors, monitors them and respawns the whole group when a
// rank dies; each step goes to every rank and completes when all answered (rank 0's logits).
scheduler_actor spawn_scheduler(caf::actor_system& sys, scheduler_config cfg, std::shared_ptr<const tokenizer> tok,
                                block_manager_actor bm, executor_group executors);

// One executor (no tensor parallelism): `make_executor` spawns it, and again after a crash.
scheduler_actor spawn_scheduler(caf::actor_system& sys, scheduler_config cfg, std::shared_ptr<const tokenizer> tok,
                                block_manager_actor bm, std::function<executor_actor()> make_executor);

}  // namespace troupe
