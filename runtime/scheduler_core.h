// The scheduling policy, pure C++ (no actors): requests and their sequences, chunked prefill,
// continuous batching, preemption by recompute, stop rules, detokenized token events. The scheduler
// actor drives it; the block manager answers its block requests; tests drive it synchronously.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/generation.h"
#include "config/error.h"
#include "runtime/block_messages.h"
#include "runtime/event_batch.h"
#include "runtime/step_batch.h"
#include "runtime/step_delta.h"
#include "runtime/stop_checker.h"

namespace troupe {

class tokenizer;
class sampler;
class incremental_decoder;
class compiled_constraint;

// Compiles a request's structured-output spec when it arrives without its compiled form (from a
// remote node); the scheduler actor supplies one backed by the compile cache.
using constraint_compiler =
    std::function<result<std::shared_ptr<const compiled_constraint>>(const constraint_spec&)>;

struct scheduler_limits {
  int32_t max_batch_size = 128;      // sequences per step
  int32_t max_prefill_tokens = 2048; // prompt tokens per step (chunked prefill)
  int32_t block_seq_len = 64;
  int64_t session_len = 0;           // 0 = unlimited
  int64_t num_blocks = 0;            // the whole pool
  bool prefix_caching = true;
};

// One output of the core: an event for a request's sink, or the request's error (terminal).
struct core_output {
  uint64_t request = 0;  // the handle add_request returned
  generation_event event;
  std::optional<error> failure;
};

class scheduler_core {
 public:
  scheduler_core(scheduler_limits limits, std::shared_ptr<const tokenizer> tok, std::vector<int32_t> eos_ids);
  ~scheduler_core();

  // Takes an admitted request (validated by the caller: params, n, lengths). Returns its handle.
  // Requests that can never fit the cache fail at once with context_too_long (in outputs).
  // A request with a constraint gets a matcher per choice (from req.compiled, else compiled here
  // by the constraint compiler); its choices stop (finish_reason stop) when the matcher is done.
  uint64_t add_request(generation_request req, double queue_time_s);
  void set_constraint_compiler(constraint_compiler c) { compile_ = std::move(c); }
  // Cancels by handle: every choice ends with finish_reason::cancelled; its blocks are released.
  void cancel(uint64_t request);
  // Fails a request (its sink died, ...): no more events for it; blocks released.
  void drop(uint64_t request);

  bool has_work() const { return !running_.empty() || !to_start_.empty(); }
  int64_t num_requests() const { return static_cast<int64_t>(requests_.size()); }
  int64_t num_running_seqs() const { return static_cast<int64_t>(running_.size()); }

  // Design note, one step in three phases:
  //  1. plan_step(available): choose this step's work — every running sequence's next token or prompt
  //     chunk (oldest first), then new sequences while the batch and the prefill budget allow —
  //     preempting the newest running sequences when their next blocks do not fit `available`.
  //     Returns the block request for the block manager (nullopt: nothing to do).
  //  2. apply_blocks(reply): takes the granted blocks; refused sequences sit this step out. Returns
  //     the forward batch (possibly empty; a non-empty one is now in flight).
  //  3. on_step_output(logits) / on_step_failed(err): takes the tokens the executor sampled for the
  //     oldest step in flight (each seq_step carries its sequence's sampler; a row without one is
  //     sampled here), detokenizes, applies stop rules and emits events; finished sequences release
  //     their blocks; newly full blocks are committed. Samplers are not touched between
  //     apply_blocks and this call. on_blocks_failed(err) ends a plan whose blocks never came.
  // Invariant: a sequence's tokens[0, num_computed) are in its blocks; each step computes
  // tokens[num_computed, num_computed + chunk) and samples when that reaches the end of tokens.
  // apply_blocks' batch is a delta against the executors' persistent batch (runtime/step_delta.h).
  //
  // Async scheduling (plan_step(available, ahead = true), with one step in flight): the next step
  // is planned before the one in flight has answered, so the executor finds it queued and the
  // scheduler's work hides behind the forward pass. A sequence the step in flight samples continues
  // with that token unseen (seq_step::feed_sampled: the executor that sampled it feeds it); one
  // whose pending token ends it by length sits the step out; one that the token ends otherwise
  // (EOS, a stop string, its constraint) computes one token for nothing, which is dropped. Such a
  // plan never preempts: when the running sequences' next blocks do not fit, it returns nullopt and
  // the step is planned once the one in flight has answered. Nor is it made while the executors are
  // to be reset (they would not hold the sampled tokens). Only an executor that samples (one rank,
  // in-process) may be given such a step.
  std::optional<block_request> plan_step(int64_t available_blocks, bool ahead = false);
  step_batch apply_blocks(const block_reply& reply);
  // The executors were restarted: the next step resets their persistent batch and resends it all.
  void resend_step_state() { delta_.resend_all(); }
  void on_step_output(const step_logits& logits);
  void on_step_failed(const error& err);
  void on_blocks_failed(const error& err);
  int32_t num_steps_in_flight() const { return num_flight_; }
  // The oldest step in flight serves no running sequence any more (every request in it ended): its
  // answer would change nothing. drop_oldest_step forgets it (its answer must then be ignored).
  bool oldest_step_is_void() const;
  void drop_oldest_step() {
    if (num_flight_ > 0) pop_flight();
  }
  // Fails every request that has a sequence waiting for blocks (the block manager keeps failing);
  // returns how many requests failed. Not while a step is in flight.
  int32_t fail_waiting(const error& err);

  // What the actor must forward: events/errors to sinks, holders to release, blocks to commit.
  // The events as they were emitted, one core_output each (allocates; tests and simple drivers).
  std::vector<core_output> take_outputs();
  // The events in flat form: swapped with `out` (the caller clears it first; the two buffers keep
  // their capacity, so steady decode emits without allocating per sequence).
  void swap_events(event_batch& out) { std::swap(events_, out); }
  std::vector<uint64_t> take_releases();
  // This step's commits, exactly sized (the core keeps its buffers: no growth step to step).
  block_commit_batch take_commits();
  // Requests whose every choice ended since the last call (the actor frees their admission slot).
  std::vector<uint64_t> take_finished_requests();

  int64_t num_preemptions() const { return num_preemptions_; }
  int64_t prompt_tokens_total() const { return prompt_tokens_total_; }
  int64_t generation_tokens_total() const { return generation_tokens_total_; }

 private:
  struct request_state;
  struct sequence;

  void start_children_after_prefill(sequence& parent);
  // Hands the full blocks computed so far to the prefix cache (a commit sent before any release).
  void commit_full_blocks(sequence& s);
  void finish_sequence(sequence& s, finish_reason why);
  void release_sequence(sequence& s);
  void preempt(sequence& s);
  void emit(sequence& s, std::span<const int32_t> ids, std::string_view text, std::vector<token_logprobs>&& lp,
            finish_reason fin);
  void fail_request(request_state& r, const error& err);
  void erase_if_done(request_state& r);
  sequence* find_seq(uint64_t seq_id);
  bool scores_prompt(const sequence& s) const;  // still scoring the prompt (params.prompt_logprobs)
  void collect_prompt_logprobs(sequence& s, const step_logits& logits, int32_t row);
  void index_step_output(const step_logits& logits);

  scheduler_limits limits_;
  std::shared_ptr<const tokenizer> tok_;
  token_stop_rules stop_rules_;
  uint64_t next_request_ = 1;
  uint64_t next_seq_ = 1;
  uint64_t next_order_ = 1;
  std::map<uint64_t, std::unique_ptr<request_state>> requests_;
  std::map<uint64_t, sequence*> seqs_;  // every live sequence by id (= block holder id)
  std::vector<sequence*> running_;      // holding blocks, in admission order (oldest first)
  std::deque<sequence*> to_start_;      // waiting for blocks (new or preempted), FIFO
  // A planned or in-flight step's sequences (null: its request ended meanwhile) and what each computes.
  struct step_record {
    std::vector<sequence*> seqs;
    std::vector<int32_t> chunk;     // [seqs] tokens computed for each
    std::vector<uint8_t> samples;   // [seqs] the step samples its next token
    std::vector<int32_t> extend;    // [seqs] planning: its entry in the plan's extends, -1: none
    void clear() { seqs.clear(), chunk.clear(), samples.clear(), extend.clear(); }
  };
  step_record plan_;                    // between plan_step and apply_blocks
  bool planning_ = false;
  step_record flight_[2];               // the steps in flight, oldest at flight_head_ (a ring: no allocation)
  int32_t flight_head_ = 0;
  int32_t num_flight_ = 0;
  step_record& oldest_flight() { return flight_[flight_head_]; }
  void pop_flight();
  bool ends_by_length_after_pending(const sequence& s) const;
  std::vector<int32_t> sampled_of_;     // [oldest flight] index into the step's sampled, -1: none
  std::vector<int64_t> row_of_;         // [oldest flight] its last logits row, -1: none
  std::vector<float> row_;              // [vocab] scratch: a row sampled here (no executor sampler)
  sampled_seq local_sample_;            // the token sampled here from row_
  event_batch events_;  // events and failures since the last take, in order
  std::vector<uint64_t> releases_;
  block_commit_batch commits_;          // newly full blocks since the last take
  std::vector<uint64_t> finished_requests_;
  constraint_compiler compile_;
  step_delta_tracker delta_;            // what the executors hold of each running sequence
  int64_t num_preemptions_ = 0;
  int64_t prompt_tokens_total_ = 0;
  int64_t generation_tokens_total_ = 0;
};

}  // namespace troupe
