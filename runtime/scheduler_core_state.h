// The scheduling core's per-request and per-sequence state, shared by its translation units
// (scheduler_core.cpp: requests, outputs and stop rules; scheduler_core_blocks.cpp: planning a
// step's blocks, the step batch, commits and releases). Private to the core.
#pragma once

#include <memory>
#include <vector>

#include "runtime/incremental_decoder.h"
#include "runtime/logprob_aligner.h"
#include "runtime/sampler.h"
#include "runtime/scheduler_core.h"
#include "runtime/stop_checker.h"

namespace troupe {

struct scheduler_core::request_state {
  uint64_t handle = 0;
  generation_request req;
  double queue_time_s = 0;
  std::vector<std::unique_ptr<sequence>> seqs;
  int32_t num_done = 0;
  usage_info usage;
  std::vector<token_logprobs> prompt_lp;  // prompt tokens 1.. scored so far (params.prompt_logprobs)
};

struct scheduler_core::sequence {
  enum class phase { waiting, running, done };
  uint64_t id = 0;
  request_state* req = nullptr;
  int32_t index = 0;
  std::vector<int32_t> tokens;   // prompt, then generated
  int32_t num_prompt = 0;
  int32_t num_computed = 0;      // tokens[0, num_computed) are in blocks
  int32_t num_committed = 0;     // full blocks registered for prefix caching
  int32_t num_generated = 0;
  int32_t inflight_tokens = 0;   // positions the steps in flight compute (after num_computed)
  int32_t inflight_samples = 0;  // tokens they sample, not yet in `tokens` (async scheduling)
  bool started_once = false;
  bool waits_for_parent = false; // choice > 0: starts from its parent's prompt blocks
  std::vector<int32_t> blocks;
  sent_table sent;               // what the executors hold of `blocks`
  phase ph = phase::waiting;
  uint64_t order = 0;            // admission order: the newest is preempted first
  std::shared_ptr<sampler> smp;  // shared with the executor while a step samples it
  std::unique_ptr<incremental_decoder> dec;
  std::unique_ptr<stop_checker> stop;
  bool first_event = true;
  logprob_aligner lps;    // generated tokens' logprobs, released with their text
  int64_t decoded = 0;    // bytes the decoder produced so far
  int64_t returned = 0;   // bytes of text emitted so far
};

inline int32_t blocks_for(int64_t tokens, int32_t bs) { return static_cast<int32_t>((tokens + bs - 1) / bs); }

}  // namespace troupe
