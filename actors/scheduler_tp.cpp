// The scheduler's tensor-parallel supervision (see scheduler_tp.h). Design note: a step carries no
// CAF timeout; the watchdog fails a step whose rank hangs past step_timeout_ms, and late answers of
// a finished step are ignored.
#include "actors/scheduler_tp.h"

#include <optional>

#include <caf/sec.hpp>

#include "actors/message_count.h"
#include "actors/scheduler_step_loop.h"
#include "actors/scheduler_watchdog.h"
#include "config/log.h"

namespace troupe::scheduler_impl {

// The answers of all ranks to one step.
struct step_gather {
  int32_t pending = 0;
  bool done = false;                  // finished (answers after a watchdog expiry are ignored)
  std::optional<step_logits> logits;  // rank 0's
  std::optional<caf::error> failure;  // the first failure (the others follow from its abort)
};

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
  if (st.core) st.core->resend_step_state();  // fresh executors hold no persistent batch
}

namespace {

bool is_current_rank(sched_pointer self, const caf::actor_addr& a) {
  for (auto& e : self->state.execs)
    if (e.address() == a) return true;
  return false;
}

// Async scheduling: the step queued behind a failed one may serve only requests that failure
// ended. Its answer would change nothing, and behind a hung step it would wait out a second timeout
// and count as a second failure: it is let go (the executor still runs it; nothing reads its answer).
void abandon_void_step(sched_pointer self) {
  auto& st = self->state;
  if (st.sent.empty() || !st.core->oldest_step_is_void()) return;
  sent_step s = st.sent.front();
  st.sent.erase(st.sent.begin());
  s.gather->done = true;
  end_call(self, s.call);
  --st.steps_in_flight;
  st.core->drop_oldest_step();
}

void finish_step(sched_pointer self, step_gather& g) {
  auto& st = self->state;
  g.done = true;
  st.last_step = clock_type::now();
  --st.steps_in_flight;
  if (!st.sent.empty() && st.sent.front().gather.get() == &g) st.sent.erase(st.sent.begin());
  // A step queued behind this one at the executor starts now: its limit counts from here.
  restart_step_calls(self, std::chrono::milliseconds(st.cfg.step_timeout_ms));
  if (g.failure) {
    ++st.num_step_failures;
    const error err = from_caf_error(*g.failure);
    logger("scheduler")->error("step failed, failing its requests: {}", err.to_string());
    if (*g.failure == caf::sec::request_receiver_down) st.group_broken = true;
    st.core->on_step_failed(err);
    abandon_void_step(self);
    if (st.group_broken && st.steps_in_flight == 0) {  // else once the step queued behind it answers
      logger("scheduler")->error("an executor died; restarting the executor group ({} rank(s))", st.group.size);
      spawn_group(self);
    }
  } else {
    ++st.num_steps;
    st.core->on_step_output(*g.logits);
  }
  dispatch(self);
  maybe_step(self);
}

}  // namespace

void run_step(sched_pointer self, step_batch batch) {
  auto& st = self->state;
  batch.step_id = ++st.next_step_id;
  const int64_t step_id = batch.step_id;
  auto g = std::make_shared<step_gather>();
  g->pending = static_cast<int32_t>(st.execs.size());
  if (st.steps_in_flight++ > 0) ++st.num_steps_ahead;
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
  }, /*is_step=*/true);
  st.sent.push_back({g, call});
  auto answered = [self, g, call] {
    if (--g->pending == 0 && end_call(self, call)) finish_step(self, *g);
  };
  for (size_t r = 0; r < st.execs.size(); ++r) {
    // The last rank gets the batch itself, the others copies of the same delta (the tables they
    // address live in each rank's persistent batch).
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
  maybe_step(self);  // async scheduling: plan the next step while this one runs
}

bool on_rank_down(sched_pointer self, const caf::down_msg& dm) {
  auto& st = self->state;
  if (!is_current_rank(self, dm.source)) return false;
  logger("scheduler")->error("an executor went down ({})", caf::to_string(dm.reason));
  st.group_broken = true;
  if (st.group.abort_step) st.group.abort_step(st.next_step_id);  // free ranks waiting for it
  if (st.steps_in_flight == 0) spawn_group(self);  // else when the steps' answers are in
  return true;
}

}  // namespace troupe::scheduler_impl
