// The scheduler actor's behaviour (see scheduler_actor.h). Design note: every submit is consumed
// at once; admitted requests go to scheduler_core, the others wait in this actor's bounded queue of
// response promises (FIFO, linear, observable) until a slot frees, their wait expires or the queue
// overflows — the backpressure lives here and nowhere else. One step is in flight at a time:
// plan -> alloc at the block manager -> forward at the executor -> dispatch events -> next step.
//
// Those two calls carry no CAF timeout: CAF 0.17 never cancels a request's timeout when the answer
// arrives, its clock keeps every one until it is due, so a timeout per alloc and per step (600 s)
// grew the process by a few MB per 10k requests (tools/soak.py). One watchdog instead: a single
// delayed message, re-armed only while a call is in flight, fails the call that outlives its limit.
#include "actors/scheduler_actor.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/sec.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/message_count.h"
#include "actors/scheduler_registry.h"
#include "config/log.h"
#include "runtime/block_reservoir.h"
#include "runtime/sampler.h"
#include "runtime/constraint_cache.h"

namespace troupe {
namespace {

using clock_type = std::chrono::steady_clock;

struct queued_request {
  generation_request req;
  sink_actor sink;
  caf::typed_response_promise<uint64_t> rp;
  clock_type::time_point since;
};

// The answers of all ranks to one step.
struct step_gather {
  int32_t pending = 0;
  bool done = false;                  // finished (answers after a watchdog expiry are ignored)
  std::optional<step_logits> logits;  // rank 0's
  std::optional<caf::error> failure;  // the first failure (the others follow from its abort)
};

// The one alloc or step in flight, with its deadline (0: none).
struct watched_call {
  uint64_t id = 0;
  clock_type::time_point deadline;
  std::function<void()> on_expiry;
};

constexpr std::chrono::milliseconds alloc_timeout{30000};

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
  // One step's events, one batch per sink (reused: cleared, not freed, every step).
  std::vector<std::pair<sink_actor, std::vector<sink_event>>> batches;
  std::unordered_map<caf::actor_addr, size_t> batch_of;  // sink -> index in batches
  int64_t available = 0;
  bool step_in_flight = false;
  bool tick_armed = false;
  bool watchdog_armed = false;
  watched_call call;
  uint64_t next_call_id = 1;
  bool draining = false;
  uint64_t next_auto_id = 1;
  int64_t num_steps = 0;
  int64_t num_step_failures = 0;
  int32_t alloc_failures_in_a_row = 0;   // reset by every allocation that is answered
  int64_t num_alloc_failures = 0;
  int64_t num_alloc_failed_requests = 0;
  clock_type::time_point last_step = clock_type::now();
  static inline const char* name = "scheduler";
};

using sched_pointer = scheduler_actor::stateful_pointer<scheduler_state>;

void maybe_step(sched_pointer self);

// Blocks the reservoir keeps on lease: enough for a few steps of new blocks at full batch, never
// more than an eighth of the pool (they are leased, if free to a user).
int32_t reservoir_target(const scheduler_config& cfg) {
  if (cfg.reservoir_blocks >= 0) return cfg.reservoir_blocks;
  const int64_t by_batch = std::clamp<int64_t>(cfg.limits.max_batch_size / 2, 4, 256);
  return static_cast<int32_t>(std::min<int64_t>(by_batch, cfg.limits.num_blocks / 8));
}

void arm_tick(sched_pointer self, std::chrono::milliseconds after) {
  if (self->state.tick_armed) return;
  self->state.tick_armed = true;
  self->delayed_send(self, after, wake_atom_v);
}

// The watchdog's period: fine enough for the shortest limit, at most one wake-up a second.
std::chrono::milliseconds watchdog_period(const scheduler_config& cfg) {
  const auto shortest = std::min<int64_t>(cfg.step_timeout_ms, alloc_timeout.count());
  return std::chrono::milliseconds(std::clamp<int64_t>(shortest / 8, 1, 1000));
}

void arm_watchdog(sched_pointer self) {
  if (self->state.watchdog_armed) return;
  self->state.watchdog_armed = true;
  self->delayed_send(self, watchdog_period(self->state.cfg), watchdog_atom_v);
}

// Starts watching a call; `on_expiry` runs (once) if it is still in flight after `limit`.
uint64_t watch_call(sched_pointer self, std::chrono::milliseconds limit, std::function<void()> on_expiry) {
  auto& st = self->state;
  st.call = {st.next_call_id++, clock_type::now() + limit, std::move(on_expiry)};
  arm_watchdog(self);
  return st.call.id;
}

// The call's answer arrived: false when the watchdog has already failed it (ignore the answer).
bool end_call(sched_pointer self, uint64_t id) {
  auto& st = self->state;
  if (st.call.id != id) return false;
  st.call = {};
  return true;
}

void on_watchdog(sched_pointer self) {
  auto& st = self->state;
  st.watchdog_armed = false;
  if (st.call.id != 0 && clock_type::now() >= st.call.deadline) {
    auto expire = std::move(st.call.on_expiry);
    st.call = {};
    expire();
  }
  if (st.call.id != 0) arm_watchdog(self);
}

void flush_blocks(sched_pointer self) {
  auto& st = self->state;
  auto commits = st.core->take_commits();
  if (!commits.empty()) self->send(st.bm, commit_atom_v, std::move(commits));
  auto releases = st.core->take_releases();
  if (!releases.empty()) {
    self->send(st.bm, release_atom_v, std::move(releases));
    st.available_stale = true;  // blocks came back: the next report asks for the new count
  }
}

uint64_t admit(sched_pointer self, generation_request req, sink_actor sink, double queue_time_s) {
  auto& st = self->state;
  const std::string id = req.request_id;
  const uint64_t handle = st.core->add_request(std::move(req), queue_time_s);
  if (st.requests.admit(handle, id, sink)) self->monitor(sink);
  return handle;
}

void admit_from_queue(sched_pointer self) {
  auto& st = self->state;
  while (!st.draining && !st.queue.empty() &&
         static_cast<int32_t>(st.requests.num_admitted()) < st.cfg.max_concurrent_requests) {
    queued_request q = std::move(st.queue.front());
    st.queue.pop_front();
    const double waited = std::chrono::duration<double>(clock_type::now() - q.since).count();
    const uint64_t handle = admit(self, std::move(q.req), q.sink, waited);
    q.rp.deliver(handle);
  }
}

// Design note: events leave once per step per sink, not once per sequence: a sink that serves many
// requests (the engine's event hub) gets a single message per step whatever the batch size.
void send_events(sched_pointer self) {
  auto& st = self->state;
  auto outs = st.core->take_outputs();
  if (outs.empty()) return;
  size_t used = 0;
  caf::actor_addr last_sink;
  size_t last = 0;
  for (auto& out : outs) {
    const auto* r = st.requests.find(out.request);
    if (!r) continue;
    const auto addr = caf::actor_cast<caf::actor_addr>(r->sink);
    if (used == 0 || addr != last_sink) {
      auto [it, fresh] = st.batch_of.try_emplace(addr, used);
      if (fresh) {
        if (used == st.batches.size()) st.batches.emplace_back();
        st.batches[used].first = r->sink;
        st.batches[used].second.clear();
        ++used;
      }
      last_sink = addr;
      last = it->second;
    }
    sink_event& e = st.batches[last].second.emplace_back();
    e.request = out.request;
    if (out.failure) {
      e.failed = true;
      e.failure = std::move(*out.failure);
    } else {
      e.event = std::move(out.event);
    }
  }
  for (size_t i = 0; i < used; ++i) {
    self->send(st.batches[i].first, events_atom_v, std::move(st.batches[i].second));
    st.batches[i].first = nullptr;  // a finished sink must not be kept alive by this cache
  }
  st.batch_of.clear();
}

void dispatch(sched_pointer self) {
  auto& st = self->state;
  send_events(self);
  flush_blocks(self);
  for (uint64_t h : st.core->take_finished_requests()) {
    const auto* r = st.requests.find(h);
    if (!r) continue;
    const auto addr = caf::actor_cast<caf::actor_addr>(r->sink);
    if (st.requests.remove(h)) self->demonitor(addr);
  }
  admit_from_queue(self);
}

// Starts a fresh executor for every rank (at start-up and after a rank died). The old ones are
// idle (no step in flight) and told to quit; a late down message from them is ignored.
void spawn_group(sched_pointer self) {
  auto& st = self->state;
  for (auto& e : st.execs) {
    self->demonitor(e.address());
    anon_send_exit(e, caf::exit_reason::user_shutdown);
  }
  st.execs.clear();
  for (int32_t r = 0; r < st.group.size; ++r) {
    st.execs.push_back(st.group.spawn(r));
    self->monitor(st.execs.back());
  }
  *st.exec_handles = st.execs;
  st.group_broken = false;
}

bool is_current_rank(sched_pointer self, const caf::actor_addr& a) {
  for (auto& e : self->state.execs)
    if (e.address() == a) return true;
  return false;
}

void finish_step(sched_pointer self, step_gather& g) {
  auto& st = self->state;
  g.done = true;
  st.last_step = clock_type::now();
  st.step_in_flight = false;
  if (g.failure) {
    ++st.num_step_failures;
    const error err = from_caf_error(*g.failure);
    logger("scheduler")->error("step failed, failing its requests: {}", err.to_string());
    if (*g.failure == caf::sec::request_receiver_down) st.group_broken = true;
    if (st.group_broken) {
      logger("scheduler")->error("an executor died; restarting the executor group ({} rank(s))", st.group.size);
      spawn_group(self);
    }
    st.core->on_step_failed(err);
  } else {
    ++st.num_steps;
    st.core->on_step_output(*g.logits);
  }
  dispatch(self);
  maybe_step(self);
}

void run_step(sched_pointer self, step_batch batch) {
  auto& st = self->state;
  batch.step_id = ++st.next_step_id;
  const int64_t step_id = batch.step_id;
  auto g = std::make_shared<step_gather>();
  g->pending = static_cast<int32_t>(st.execs.size());
  const uint64_t call = watch_call(self, std::chrono::milliseconds(st.cfg.step_timeout_ms), [self, g, step_id] {
    // A rank is hung: fail the step now; its late answers are ignored (g->done).
    const int32_t limit = self->state.cfg.step_timeout_ms;
    logger("scheduler")->error("forward step {} did not finish within step_timeout_ms ({} ms)", step_id, limit);
    if (!g->failure)
      g->failure = to_caf_error({errc::timeout, "forward step " + std::to_string(step_id) +
                                                    " did not finish within step_timeout_ms (" +
                                                    std::to_string(limit) + " ms)"});
    if (self->state.group.abort_step) self->state.group.abort_step(step_id);
    finish_step(self, *g);
  });
  auto answered = [self, g, call] {
    if (--g->pending == 0 && end_call(self, call)) finish_step(self, *g);
  };
  for (size_t r = 0; r < st.execs.size(); ++r) {
    // The last rank gets the batch itself, the others copies.
    step_batch msg = r + 1 == st.execs.size() ? std::move(batch) : batch;
    self->request(st.execs[r], caf::infinite, step_atom_v, std::move(msg))
        .then(
            [g, r, answered](step_logits& out) {
              count_message();
              if (g->done) return;
              if (r == 0) g->logits = std::move(out);
              answered();
            },
            [self, g, step_id, answered](caf::error& e) {
              count_message();
              if (g->done) return;
              if (!g->failure) {
                g->failure = e;
                if (self->state.group.abort_step) self->state.group.abort_step(step_id);
              }
              answered();
            });
  }
}

// Tops the reservoir up below its low watermark. Asynchronous: no step waits for the grant.
void refill_reservoir(sched_pointer self) {
  auto& st = self->state;
  const int32_t n = st.reservoir.wanted();
  if (n <= 0 || st.draining) return;
  const uint64_t holder = st.reservoir.holder();
  st.reservoir.on_refill_sent();
  self->request(st.bm, caf::infinite, reserve_atom_v, holder, n)
      .then(
          [self](block_grant& g) {
            count_message();
            auto& st = self->state;
            if (g.holder == st.reservoir.holder()) st.available = g.num_available;
            st.reservoir.on_grant(g);
          },
          [self, holder](caf::error&) {
            count_message();
            self->state.reservoir.on_refill_failed(holder);
          });
}

// Before an allocation the block manager decides, every block must be its to hand out.
void return_reservoir(sched_pointer self) {
  auto& st = self->state;
  if (const uint64_t h = st.reservoir.take_back()) self->send(st.bm, release_atom_v, std::vector<uint64_t>{h});
}

// Design note: a step whose block request has no starts (steady decode) is served from the
// reservoir at once; the assignments follow to the block manager in one asynchronous message, ahead
// of any commit or release of those sequences (same sender, same mailbox order).
bool step_from_reservoir(sched_pointer self, const block_request& plan) {
  auto& st = self->state;
  block_assignments report;
  auto reply = st.reservoir.assign(plan, report);
  if (!reply) return false;
  if (!report.grants.empty() || st.available_stale) {
    // The answer refreshes `available` for later plans (releases since the last answer count, so
    // waiting sequences can start and no running one is preempted for blocks already returned).
    st.available_stale = false;
    self->request(st.bm, caf::infinite, assign_atom_v, std::move(report))
        .then(
            [self](int64_t available) {
              count_message();
              self->state.available = available;
            },
            [](caf::error&) { count_message(); });
  }
  step_batch batch = st.core->apply_blocks(*reply);
  flush_blocks(self);
  refill_reservoir(self);
  if (batch.seqs.empty()) {
    dispatch(self);
    arm_tick(self, std::chrono::milliseconds(5));
    return true;
  }
  st.step_in_flight = true;
  run_step(self, std::move(batch));
  return true;
}

void maybe_step(sched_pointer self) {
  auto& st = self->state;
  if (st.step_in_flight || !st.core->has_work()) return;
  auto plan = st.core->plan_step(st.available + st.reservoir.size());
  flush_blocks(self);  // preemptions release before the alloc (same mailbox order at the block manager)
  if (plan && step_from_reservoir(self, *plan)) return;
  return_reservoir(self);
  st.step_in_flight = true;
  const bool refresh_only = !plan.has_value();
  auto failed = [self](const error& e) {
    auto& st = self->state;
    st.step_in_flight = false;
    st.core->on_step_failed(e);
    ++st.num_alloc_failures;
    if (++st.alloc_failures_in_a_row >= st.cfg.max_alloc_failures) {
      // The block manager keeps failing: the requests waiting for blocks would retry forever.
      const error why{e.code, "the block manager failed " + std::to_string(st.alloc_failures_in_a_row) +
                                  " allocations in a row; the last: " + e.message};
      const int32_t n = st.core->fail_waiting(why);
      st.num_alloc_failed_requests += n;
      st.alloc_failures_in_a_row = 0;
      logger("scheduler")->error("{}; failed {} waiting request(s)", why.message, n);
    }
    dispatch(self);
    arm_tick(self, std::chrono::milliseconds(5));  // sequences still waiting retry (else they stall)
  };
  const uint64_t call = watch_call(self, alloc_timeout, [failed] {
    failed({errc::timeout, "the block manager did not answer an allocation within " +
                               std::to_string(alloc_timeout.count() / 1000) + " s"});
  });
  self->request(st.bm, caf::infinite, alloc_atom_v, plan ? std::move(*plan) : block_request{})
      .then(
          [self, refresh_only, call](block_reply& reply) {
            count_message();
            if (!end_call(self, call)) return;
            auto& st = self->state;
            st.alloc_failures_in_a_row = 0;
            const int64_t before = st.available;
            st.available = reply.num_available;
            st.available_stale = false;
            step_batch batch = refresh_only ? step_batch{} : st.core->apply_blocks(reply);
            flush_blocks(self);
            if (batch.seqs.empty()) {
              st.step_in_flight = false;
              dispatch(self);
              if (refresh_only && st.available <= before) arm_tick(self, std::chrono::milliseconds(5));
              else maybe_step(self);
              return;
            }
            refill_reservoir(self);
            run_step(self, std::move(batch));
          },
          [self, call, failed](caf::error& e) {
            count_message();
            if (end_call(self, call)) failed(from_caf_error(e));
          });
}

caf::result<uint64_t> on_submit(sched_pointer self, generation_request& req, sink_actor& sink) {
  auto& st = self->state;
  auto reject = [](errc code, std::string msg) -> caf::result<uint64_t> { return to_caf_error({code, std::move(msg)}); };
  if (st.draining) return reject(errc::draining, "the server is shutting down");
  if (req.request_id.empty()) req.request_id = "req-" + std::to_string(st.next_auto_id++);
  if (st.requests.contains(req.request_id))
    return reject(errc::invalid_argument, "duplicate request id '" + req.request_id + "': a request with this id is in flight");
  if (req.n < 1 || req.n > st.cfg.max_n)
    return reject(errc::invalid_argument, "n must be in [1, " + std::to_string(st.cfg.max_n) + "]");
  if (req.prompt_ids.empty()) return reject(errc::invalid_argument, "the prompt is empty");
  for (int32_t id : req.prompt_ids)
    if (id < 0 || id >= st.cfg.vocab_size)
      return reject(errc::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                std::to_string(st.cfg.vocab_size) + ")");
  if (auto v = validate_sampling_params(req.params, st.cfg.vocab_size); !v) return to_caf_error(v.err());
  const int64_t session = st.cfg.limits.session_len;
  const int64_t len = static_cast<int64_t>(req.prompt_ids.size());
  if (session > 0 && len + req.params.max_tokens > session)
    return reject(errc::context_too_long, "the prompt (" + std::to_string(len) + " tokens) plus max_tokens (" +
                                              std::to_string(req.params.max_tokens) + ") exceeds session_len " +
                                              std::to_string(session));
  if (static_cast<int32_t>(st.requests.num_admitted()) < st.cfg.max_concurrent_requests && st.queue.empty()) {
    const uint64_t h = admit(self, std::move(req), sink, 0.0);
    dispatch(self);
    maybe_step(self);
    return h;
  }
  if (static_cast<int32_t>(st.queue.size()) >= st.cfg.max_queued_requests)
    return reject(errc::overloaded, "the admission queue is full (" + std::to_string(st.queue.size()) +
                                        " waiting, " + std::to_string(st.requests.num_admitted()) + " in flight)");
  auto rp = self->make_response_promise<uint64_t>();
  st.requests.add_queued(req.request_id);
  st.queue.push_back({std::move(req), sink, rp, clock_type::now()});
  arm_tick(self, std::chrono::milliseconds(20));
  return rp;
}

void on_tick(sched_pointer self) {
  auto& st = self->state;
  st.tick_armed = false;
  const auto now = clock_type::now();
  const auto limit = std::chrono::duration<double>(st.cfg.queue_timeout_s);
  while (!st.queue.empty() && now - st.queue.front().since > limit) {  // FIFO: the oldest expire first
    st.queue.front().rp.deliver(to_caf_error(
        {errc::overloaded, "waited " + std::to_string(st.cfg.queue_timeout_s) + " s for admission"}));
    st.requests.remove_queued(st.queue.front().req.request_id);
    st.queue.pop_front();
  }
  maybe_step(self);
  if (!st.queue.empty() || (st.core->has_work() && !st.step_in_flight)) arm_tick(self, std::chrono::milliseconds(20));
}

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
    if (is_current_rank(self, dm.source)) {
      logger("scheduler")->error("an executor went down ({})", caf::to_string(dm.reason));
      st.group_broken = true;
      if (st.group.abort_step) st.group.abort_step(st.next_step_id);  // free ranks waiting for it
      if (!st.step_in_flight) spawn_group(self);  // else when the step's answers are in
      return;
    }
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
        for (auto q = st.queue.begin(); q != st.queue.end(); ++q)
          if (q->req.request_id == id) {
            q->rp.deliver(to_caf_error({errc::cancelled, "cancelled while waiting for admission"}));
            st.requests.remove_queued(id);
            st.queue.erase(q);
            return;
          }
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
                  s.num_alloc_failures = st.num_alloc_failures;
                  s.num_alloc_failed_requests = st.num_alloc_failed_requests;
                  s.busy = st.core->has_work() || st.step_in_flight;
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
        for (auto& q : st.queue) {
          q.rp.deliver(to_caf_error({errc::draining, "the server is shutting down"}));
          st.requests.remove_queued(q.req.request_id);
        }
        st.queue.clear();
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
