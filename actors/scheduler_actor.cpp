// The scheduler actor's behaviour (see scheduler_actor.h): its state's set-up, the message
// handlers and the spawn functions. The work lives in scheduler_admission (submit checks and the
// bounded admission queue), scheduler_step_loop (plan, blocks, dispatch), scheduler_tp (the
// executor group and each step's fan-out to its ranks) and scheduler_watchdog (call deadlines).
#include "actors/scheduler_actor.h"

#include <chrono>
#include <memory>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/message_count.h"
#include "actors/scheduler_admission.h"
#include "actors/scheduler_state.h"
#include "actors/scheduler_step_loop.h"
#include "actors/scheduler_tp.h"
#include "actors/scheduler_watchdog.h"
#include "runtime/constraint_cache.h"

namespace troupe {
namespace {

using namespace scheduler_impl;

scheduler_actor::behavior_type scheduler(sched_pointer self, scheduler_config cfg, std::shared_ptr<const tokenizer> tok,
                                         block_manager_actor bm, executor_group group) {
  auto& st = self->state;
  if (tok) {
    // A request from a remote listener carries its constraint as a spec only (local listeners
    // compile before submitting): compiled here, through a cache of its own.
    st.core = std::make_unique<scheduler_core>(cfg.limits, tok, cfg.eos_ids);
    auto cache = std::make_shared<std::unique_ptr<constraint_cache>>();  // built on first use
    st.core->set_constraint_compiler([cache, tok](const constraint_spec& spec) {
      if (!*cache) *cache = std::make_unique<constraint_cache>(*tok);
      return (*cache)->get(spec);
    });
  } else {
    st.core = std::make_unique<scheduler_core>(cfg.limits, std::move(tok), cfg.eos_ids);
  }
  // Holder ids of the reservoir: bit 62 and this actor's id, so no sequence (ids from 1) and no
  // other scheduler at the same block manager shares them; the low 32 bits count take-backs.
  st.reservoir = block_reservoir(reservoir_target(cfg), (uint64_t{1} << 62) | ((self->id() & 0x3fffffff) << 32));
  st.available = cfg.limits.num_blocks;
  st.cfg = std::move(cfg);
  st.bm = std::move(bm);
  st.group = std::move(group);
  st.calls.reserve(4);  // an alloc and two steps at most: watching them never allocates
  st.sent.reserve(2);
  // No executor outlives the scheduler. (The functor runs after the state is gone: keep handles.)
  auto handles = std::make_shared<std::vector<executor_actor>>();
  st.exec_handles = handles;
  self->attach_functor([handles] {
    for (auto& e : *handles) anon_send_exit(e, caf::exit_reason::user_shutdown);
  });
  spawn_group(self);
  self->set_down_handler([self](caf::down_msg& dm) {
    count_message();
    auto& st = self->state;
    if (on_rank_down(self, dm)) return;
    const auto handles = st.requests.handles_of_sink(dm.source);
    if (handles.empty()) return;
    for (uint64_t h : handles) st.core->drop(h);  // the client is gone: stop its work, return its blocks
    dispatch(self);
  });
  return {
      [self](submit_atom, generation_request& req, sink_actor& sink) {
        count_message();
        return on_submit(self, req, sink);
      },
      [self](cancel_atom, const std::string& id) {
        count_message();
        auto& st = self->state;
        if (const uint64_t h = st.requests.handle_of(id)) {
          st.core->cancel(h);
          dispatch(self);
          return;
        }
        cancel_queued(self, id);
      },
      [self](stats_atom) -> caf::result<engine_stats> {
        auto rp = self->make_response_promise<engine_stats>();
        self->request(self->state.bm, std::chrono::seconds(5), stats_atom_v)
            .then(
                [self, rp](block_pool_usage& u) mutable {
                  auto& st = self->state;
                  engine_stats s;
                  s.num_requests_running = static_cast<int64_t>(st.requests.num_admitted());
                  s.num_requests_waiting = static_cast<int64_t>(st.queue.size());
                  s.num_blocks_total = u.num_total;
                  s.num_blocks_used = u.num_used;
                  s.num_blocks_cached = u.num_cached;
                  s.prefix_cache_queries = u.prefix_queries;
                  s.prefix_cache_hits = u.prefix_hits;
                  s.num_preemptions = st.core->num_preemptions();
                  s.prompt_tokens_total = st.core->prompt_tokens_total();
                  s.generation_tokens_total = st.core->generation_tokens_total();
                  s.num_steps = st.num_steps;
                  s.num_step_failures = st.num_step_failures;
                  s.num_steps_planned_ahead = st.num_steps_ahead;
                  s.num_alloc_failures = st.num_alloc_failures;
                  s.num_alloc_failed_requests = st.num_alloc_failed_requests;
                  s.busy = st.core->has_work() || st.steps_in_flight > 0 || st.allocating;
                  s.last_step_age_s =
                      s.busy ? std::chrono::duration<double>(clock_type::now() - st.last_step).count() : 0.0;
                  rp.deliver(s);
                },
                [rp](caf::error& e) mutable { rp.deliver(e); });
        return rp;
      },
      [self](drain_atom, bool cancel_all) {
        auto& st = self->state;
        st.draining = true;
        drain_queue(self);
        if (cancel_all) {
          for (uint64_t h : st.requests.handles()) st.core->cancel(h);
          dispatch(self);
        }
      },
      [self](wake_atom) {
        count_message();
        on_tick(self);
      },
      [self](watchdog_atom) {
        count_message();
        on_watchdog(self);
      },
  };
}

}  // namespace

scheduler_actor spawn_scheduler(caf::actor_system& sys, scheduler_config cfg, std::shared_ptr<const tokenizer> tok,
                                block_manager_actor bm, executor_group executors) {
  return sys.spawn(scheduler, std::move(cfg), std::move(tok), std::move(bm), std::move(executors));
}

scheduler_actor spawn_scheduler(caf::actor_system& sys, scheduler_config cfg, std::shared_ptr<const tokenizer> tok,
                                block_manager_actor bm, std::function<executor_actor()> make_executor) {
  executor_group g;
  g.size = 1;
  g.spawn = [make_executor = std::move(make_executor)](int32_t) { return make_executor(); };
  return spawn_scheduler(sys, std::move(cfg), std::move(tok), std::move(bm), std::move(g));
}

}  // namespace troupe
