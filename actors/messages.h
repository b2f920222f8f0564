// Every message the actors exchange: atoms, CAF 0.17 inspectors for the plain structs of runtime/
// (so each message can cross nodes unchanged), the type-ID block, and the typed actor interfaces.
// Errors travel as caf::error in the "troupe" category carrying troupe::error's code and message.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/type_id.hpp>
#include <caf/typed_actor.hpp>

#include "actors/engine.h"
#include "runtime/block_messages.h"
#include "runtime/block_pool.h"
#include "runtime/conversation_pins.h"
#include "runtime/event_batch.h"
#include "runtime/generation.h"
#include "runtime/step_batch.h"
#include "troupe/messages.h"  // public atoms, inspectors and the troupe_api type-ID block

namespace troupe {

// Atoms (text <= 10 characters).
using submit_atom = caf::atom_constant<caf::atom("submit")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using alloc_atom = caf::atom_constant<caf::atom("alloc")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using commit_atom = caf::atom_constant<caf::atom("commit")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using step_atom = caf::atom_constant<caf::atom("step")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;
using watchdog_atom = caf::atom_constant<caf::atom("watchdog")>;
using events_atom = caf::atom_constant<caf::atom("events")>;
using reserve_atom = caf::atom_constant<caf::atom("reserve")>;
using assign_atom = caf::atom_constant<caf::atom("assign")>;
using pin_atom = caf::atom_constant<caf::atom("pin")>;          // conversation pins (Responses API)
using unpin_atom = caf::atom_constant<caf::atom("unpin")>;
using pin_stats_atom = caf::atom_constant<caf::atom("pinstats")>;

constexpr submit_atom submit_atom_v{};
constexpr cancel_atom cancel_atom_v{};
constexpr alloc_atom alloc_atom_v{};
constexpr release_atom release_atom_v{};
constexpr commit_atom commit_atom_v{};
constexpr stats_atom stats_atom_v{};
constexpr step_atom step_atom_v{};
constexpr drain_atom drain_atom_v{};
constexpr wake_atom wake_atom_v{};
constexpr watchdog_atom watchdog_atom_v{};
constexpr events_atom events_atom_v{};
constexpr reserve_atom reserve_atom_v{};
constexpr assign_atom assign_atom_v{};


constexpr pin_atom pin_atom_v{};
constexpr unpin_atom unpin_atom_v{};
constexpr pin_stats_atom pin_stats_atom_v{};

// Pin the cached blocks of a conversation's tokens (prompt + output) under `key` (conversation_pins.h).
struct conversation_pin_request {
  uint64_t key = 0;
  std::vector<int32_t> tokens;
};

// --- inspectors ------------------------------------------------------------------------------

// An id_list crosses processes as a plain list of ids (the same bytes as a std::vector<int32_t>).
template <class Inspector>
typename std::enable_if<Inspector::reads_state, typename Inspector::result_type>::type inspect(Inspector& f,
                                                                                                id_list& x) {
  std::vector<int32_t> ids = x.to_vector();
  return f(ids);
}

template <class Inspector>
typename std::enable_if<!Inspector::reads_state, typename Inspector::result_type>::type inspect(Inspector& f,
                                                                                                 id_list& x) {
  std::vector<int32_t> ids;
  return f(ids, caf::meta::load_callback([&]() -> caf::error {
             x.assign(ids.begin(), ids.end());
             return caf::none;
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, seq_step& x) {
  return f(caf::meta::type_name("seq_step"), x.seq_id, x.tokens, x.start_pos, x.block_table, x.new_seq, x.feed_sampled,
           x.want_logits, x.want_all_logits, x.prompt_logprobs, x.next_token);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, position_logprobs& x) {
  return f(caf::meta::type_name("position_logprobs"), x.seq, x.position, x.lp);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sampled_seq& x) {
  return f(caf::meta::type_name("sampled_seq"), x.seq, x.token, x.blocked, x.terminated);
}

// seq_step::sampling and step_batch::tables are in-process pointers: not serialized (step_batch.h).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_batch& x) {
  return f(caf::meta::type_name("step_batch"), x.seqs, x.step_id, x.delta, x.reset, x.removed);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_logits& x) {
  return f(caf::meta::type_name("step_logits"), x.row_seq, x.data, x.vocab_size, x.prompt, x.sampled);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_start& x) {
  return f(caf::meta::type_name("block_start"), x.holder, x.tokens, x.chunk_budget, x.match_prefix, x.fork_from,
           x.fork_blocks, x.reserve_blocks);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_extend& x) {
  return f(caf::meta::type_name("block_extend"), x.holder, x.num_blocks);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_request& x) {
  return f(caf::meta::type_name("block_request"), x.extends, x.starts);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_start_reply& x) {
  return f(caf::meta::type_name("block_start_reply"), x.holder, x.ok, x.blocks, x.num_cached_tokens);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_extend_reply& x) {
  return f(caf::meta::type_name("block_extend_reply"), x.holder, x.ok, x.blocks);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_reply& x) {
  return f(caf::meta::type_name("block_reply"), x.extends, x.starts, x.num_available);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_commit_batch::entry& x) {
  return f(caf::meta::type_name("block_commit_entry"), x.holder, x.first_block, x.tokens_begin, x.tokens_end);
}

// A peer's batch is refused unless every range lies inside its tokens (apply_block_commits trusts them).
inline bool block_commit_batch_is_consistent(const block_commit_batch& b) {
  for (const auto& e : b.entries)
    if (e.tokens_begin < 0 || e.tokens_begin > e.tokens_end || e.tokens_end > static_cast<int64_t>(b.tokens.size()) ||
        e.first_block < 0)
      return false;
  return true;
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_commit_batch& x) {
  return f(caf::meta::type_name("block_commit_batch"), x.entries, x.tokens,
           caf::meta::load_callback([&]() -> caf::error {
             if (!block_commit_batch_is_consistent(x)) return caf::make_error(caf::sec::invalid_argument);
             return caf::none;
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_grant& x) {
  return f(caf::meta::type_name("block_grant"), x.holder, x.blocks, x.num_available);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_assignments& x) {
  return f(caf::meta::type_name("block_assignments"), x.reservoir, x.grants);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_pool_usage& x) {
  return f(caf::meta::type_name("block_pool_usage"), x.num_total, x.num_used, x.num_cached, x.num_free,
           x.prefix_queries, x.prefix_hits, x.num_evictions);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, engine_stats& x) {
  return f(caf::meta::type_name("engine_stats"), x.num_requests_running, x.num_requests_waiting, x.num_blocks_total,
           x.num_blocks_used, x.num_blocks_cached, x.prefix_cache_queries, x.prefix_cache_hits, x.num_preemptions,
           x.prompt_tokens_total, x.generation_tokens_total, x.num_steps, x.num_step_failures, x.last_step_age_s,
           x.busy, x.num_alloc_failures, x.num_alloc_failed_requests, x.num_steps_planned_ahead);
}

// A step's events to a sink (runtime/event_batch.h). Each entry's `request` is the handle the
// scheduler answered the submit with: a sink that serves many requests tells them apart by it.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_batch::entry& x) {
  uint8_t fin = static_cast<uint8_t>(x.finish);
  return f(caf::meta::type_name("event_entry"), x.request, x.index, fin, x.failed, x.tokens_begin, x.tokens_end,
           x.text_begin, x.text_end, x.detail, x.queue_time_s, x.usage,
           caf::meta::load_callback([&]() -> caf::error {
             if (fin > static_cast<uint8_t>(finish_reason::error)) return caf::make_error(caf::sec::invalid_argument);
             x.finish = static_cast<finish_reason>(fin);
             return caf::none;
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_batch::detail& x) {
  return f(caf::meta::type_name("event_detail"), x.logprobs, x.prompt_logprobs, x.failure);
}

// A peer's batch is refused unless every range lies inside its buffers (event_batch::read trusts them).
inline bool event_batch_is_consistent(const event_batch& b) {
  for (const auto& e : b.entries)
    if (e.tokens_begin > e.tokens_end || e.tokens_end > b.tokens.size() || e.text_begin > e.text_end ||
        e.text_end > b.text.size() || e.detail >= static_cast<int64_t>(b.details.size()) || e.detail < -1 ||
        (e.failed && e.detail < 0))
      return false;
  return true;
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_batch& x) {
  return f(caf::meta::type_name("event_batch"), x.entries, x.tokens, x.text, x.details,
           caf::meta::load_callback([&]() -> caf::error {
             if (!event_batch_is_consistent(x)) return caf::make_error(caf::sec::invalid_argument);
             return caf::none;
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, conversation_pin_request& x) {
  return f(caf::meta::type_name("conversation_pin_request"), x.key, x.tokens);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, conversation_pin_stats& x) {
  return f(caf::meta::type_name("conversation_pin_stats"), x.num_pins, x.num_pinned_blocks, x.budget_blocks,
           x.num_pinned_total, x.num_released, x.num_expired, x.num_dropped_pressure, x.num_dropped_budget,
           x.pin_tokens_queried, x.pin_tokens_found);
}

// --- typed interfaces ------------------------------------------------------------------------

// A sink of one or many requests: the scheduler sends it one `events` batch per step (every event
// and failure of its requests in that step); a per-request sink quits when every choice has
// finished. A cancel (of a request id) sent to the sink reaches the scheduler after the sink's own
// submit (per-sender FIFO), so a client that leaves at once is never cancelled before its request
// exists. `event`/`fail` without a handle: one request's sink, or every request of the sink.
using sink_actor = caf::typed_actor<caf::reacts_to<event_atom, generation_event>,
                                    caf::reacts_to<events_atom, event_batch>,
                                    caf::reacts_to<fail_atom, error>,
                                    caf::reacts_to<cancel_atom>,
                                    caf::reacts_to<cancel_atom, std::string>>;

// The block manager: allocations at admission (extends, then starts), releases, commits, usage;
// and a scheduler's reservoir: `reserve` leases up to n blocks to a reservoir holder, `assign`
// reports (asynchronously, at most once per step) which reservoir blocks went to which sequence,
// answered with the blocks available after it (the scheduler's estimate; no step waits for it).
// Also the conversation pins of the Responses API (pin, unpin by key, their statistics).
using block_manager_actor =
    caf::typed_actor<caf::replies_to<alloc_atom, block_request>::with<block_reply>,
                     caf::replies_to<reserve_atom, uint64_t, int32_t>::with<block_grant>,
                     caf::replies_to<assign_atom, block_assignments>::with<int64_t>,
                     caf::reacts_to<release_atom, std::vector<uint64_t>>,
                     caf::reacts_to<commit_atom, block_commit_batch>,
                     caf::replies_to<stats_atom>::with<block_pool_usage>,
                     caf::reacts_to<pin_atom, conversation_pin_request>,
                     caf::reacts_to<unpin_atom, uint64_t>,
                     caf::replies_to<pin_stats_atom>::with<conversation_pin_stats>>;

// An executor: one forward pass per step.
using executor_actor = caf::typed_actor<caf::replies_to<step_atom, step_batch>::with<step_logits>>;

// The scheduler: admission (answers with the request's handle once admitted, or an error),
// cancellation by request id, statistics, drain (true: also cancel everything in flight).
using scheduler_actor = caf::typed_actor<caf::replies_to<submit_atom, generation_request, sink_actor>::with<uint64_t>,
                                         caf::reacts_to<cancel_atom, std::string>,
                                         caf::replies_to<stats_atom>::with<engine_stats>,
                                         caf::reacts_to<drain_atom, bool>,
                                         caf::reacts_to<wake_atom>,
                                         caf::reacts_to<watchdog_atom>>;

// troupe::error <-> caf::error.
caf::error to_caf_error(const error& e);
error from_caf_error(const caf::error& e);

}  // namespace troupe

CAF_BEGIN_TYPE_ID_BLOCK(troupe, ::troupe::first_internal_type_id)
CAF_ADD_TYPE_ID(troupe, (troupe::seq_step))
CAF_ADD_TYPE_ID(troupe, (troupe::step_batch))
CAF_ADD_TYPE_ID(troupe, (troupe::step_logits))
CAF_ADD_TYPE_ID(troupe, (troupe::block_start))
CAF_ADD_TYPE_ID(troupe, (troupe::block_extend))
CAF_ADD_TYPE_ID(troupe, (troupe::block_request))
CAF_ADD_TYPE_ID(troupe, (troupe::block_start_reply))
CAF_ADD_TYPE_ID(troupe, (troupe::block_extend_reply))
CAF_ADD_TYPE_ID(troupe, (troupe::block_reply))
CAF_ADD_TYPE_ID(troupe, (troupe::block_commit_batch))
CAF_ADD_TYPE_ID(troupe, (troupe::block_commit_batch::entry))
CAF_ADD_TYPE_ID(troupe, (troupe::block_pool_usage))
CAF_ADD_TYPE_ID(troupe, (troupe::engine_stats))
CAF_ADD_TYPE_ID(troupe, (std::vector<troupe::block_commit_batch::entry>))
CAF_ADD_TYPE_ID(troupe, (troupe::sink_actor))
CAF_ADD_TYPE_ID(troupe, (troupe::event_batch))
CAF_ADD_TYPE_ID(troupe, (troupe::block_grant))
CAF_ADD_TYPE_ID(troupe, (troupe::block_assignments))
CAF_ADD_TYPE_ID(troupe, (troupe::conversation_pin_request))
CAF_ADD_TYPE_ID(troupe, (troupe::conversation_pin_stats))
CAF_END_TYPE_ID_BLOCK(troupe)

static_assert(caf::id_block::troupe::begin >= caf::id_block::troupe_api::end &&
                  caf::id_block::troupe::end <= ::troupe::first_user_type_id,
              "the internal troupe block must stay inside troupe's internal type-ID range");
