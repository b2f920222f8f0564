// The scheduler's step loop (see scheduler_step_loop.h). Design note: the alloc carries no CAF
// timeout (CAF 0.17 keeps every request timeout in its clock until due); the watchdog fails an
// alloc that outlives alloc_timeout instead.
#include "actors/scheduler_step_loop.h"

#include <algorithm>

#include "actors/message_count.h"
#include "actors/scheduler_admission.h"
#include "actors/scheduler_tp.h"
#include "actors/scheduler_watchdog.h"
#include "config/log.h"

namespace troupe::scheduler_impl {

// Blocks the reservoir keeps on lease: a block for every sequence of a full batch (sequences that
// started together cross a block boundary in the same step, and a short reservoir sends that step
// to the block manager), never more than an eighth of the pool (they are leased, if free to a user).
int32_t reservoir_target(const scheduler_config& cfg) {
  if (cfg.reservoir_blocks >= 0) return cfg.reservoir_blocks;
  const int64_t by_batch = std::clamp<int64_t>(cfg.limits.max_batch_size, 4, 1024);
  return static_cast<int32_t>(std::min<int64_t>(by_batch, cfg.limits.num_blocks / 8));
}

void arm_tick(sched_pointer self, std::chrono::milliseconds after) {
  if (self->state.tick_armed) return;
  self->state.tick_armed = true;
  self->delayed_send(self, after, wake_atom_v);
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

namespace {

// Design note: events leave once per step per sink, not once per sequence: a sink that serves many
// requests (the engine's event hub) gets a single message per step whatever the batch size. The
// batch is flat (event_batch.h): a few buffers per message, none per sequence.
void send_events(sched_pointer self) {
  auto& st = self->state;
  st.events.clear();
  st.core->swap_events(st.events);
  const event_batch& evs = st.events;
  if (evs.empty()) return;
  // Pass 1: each event's batch, and what each batch holds, so every batch's buffers are allocated
  // once at their exact size (growing them by doubling cost log2(B) allocations each).
  constexpr size_t none = static_cast<size_t>(-1);
  st.batch_slot.assign(evs.size(), none);
  st.batch_size.clear();
  size_t used = 0;
  caf::actor_addr last_sink;
  size_t last = 0;
  for (size_t k = 0; k < evs.size(); ++k) {
    const auto& e = evs.entries[k];
    const auto* r = st.requests.find(e.request);
    if (!r) continue;
    const auto addr = caf::actor_cast<caf::actor_addr>(r->sink);
    if (used == 0 || addr != last_sink) {
      auto [it, fresh] = st.batch_of.try_emplace(addr, used);
      if (fresh) {
        if (used == st.batches.size()) st.batches.emplace_back();
        st.batches[used].first = r->sink;
        st.batches[used].second = event_batch{};
        st.batch_size.emplace_back();
        ++used;
      }
      last_sink = addr;
      last = it->second;
    }
    st.batch_slot[k] = last;
    auto& n = st.batch_size[last];
    ++n.entries;
    n.tokens += e.tokens_end - e.tokens_begin;
    n.text += e.text_end - e.text_begin;
    if (e.detail >= 0) ++n.details;
  }
  for (size_t i = 0; i < used; ++i) {
    const auto& n = st.batch_size[i];
    st.batches[i].second.reserve(n.entries, n.tokens, n.text, n.details);
  }
  for (size_t k = 0; k < evs.size(); ++k)
    if (st.batch_slot[k] != none) st.batches[st.batch_slot[k]].second.append(evs, k);
  for (size_t i = 0; i < used; ++i) {
    self->send(st.batches[i].first, events_atom_v, std::move(st.batches[i].second));
    st.batches[i].first = nullptr;  // a finished sink must not be kept alive by this cache
  }
  st.batch_of.clear();
}

}  // namespace

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

namespace {

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

// Async scheduling: the next step may be planned while one is in flight (scheduler_core.h) when
// the one executor samples and keeps its tokens, and it is alive.
bool may_plan_ahead(const scheduler_state& st) {
  return st.cfg.async_scheduling && st.execs.size() == 1 && !st.group_broken;
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
    if (st.steps_in_flight == 0) arm_tick(self, std::chrono::milliseconds(5));
    return true;
  }
  run_step(self, std::move(batch));
  return true;
}

}  // namespace

void maybe_step(sched_pointer self) {
  auto& st = self->state;
  if (st.allocating || !st.core->has_work()) return;
  // With no step in flight, plan now; with one, plan the next ahead of its answer (or wait for it).
  const bool ahead = st.steps_in_flight > 0;
  if (ahead && (st.steps_in_flight > 1 || !may_plan_ahead(st))) return;
  auto plan = st.core->plan_step(st.available + st.reservoir.size(), ahead);
  if (ahead && !plan) return;  // planned when the step in flight answers
  flush_blocks(self);  // preemptions release before the alloc (same mailbox order at the block manager)
  if (plan && step_from_reservoir(self, *plan)) return;
  return_reservoir(self);
  st.allocating = true;
  const bool refresh_only = !plan.has_value();
  auto failed = [self](const error& e) {
    auto& st = self->state;
    st.allocating = false;
    st.core->on_blocks_failed(e);
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
            st.allocating = false;
            st.alloc_failures_in_a_row = 0;
            const int64_t before = st.available;
            st.available = reply.num_available;
            st.available_stale = false;
            step_batch batch = refresh_only ? step_batch{} : st.core->apply_blocks(reply);
            flush_blocks(self);
            if (batch.seqs.empty()) {
              dispatch(self);
              if (st.steps_in_flight > 0) return;  // the step in flight's answer plans the next
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

}  // namespace troupe::scheduler_impl
