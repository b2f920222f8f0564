// The event hub's behaviour (see event_hub.h). Design note: the hub learns a request's handle from
// the scheduler's answer to its submit; the scheduler answers before it sends any event of that
// request, and both travel scheduler -> hub, so (per-sender FIFO) no event precedes its handle.
// No CAF timeout on the submit: the scheduler answers every submit (its admission queue times out
// on its own) and the hub monitors it; a timeout per request would stay in CAF 0.17's clock until
// due in this long-lived actor.
#include "actors/event_hub.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/message_count.h"

namespace troupe {
namespace {

struct hub_entry {
  std::string id;
  int32_t num_choices = 1;
  int32_t num_finished = 0;
  hub_callbacks cb;
};

// (No handle as the first member: C++20 would let CAF build the state from the actor pointer.)
struct hub_state {
  std::shared_ptr<hub_inbox> inbox;
  scheduler_actor scheduler;
  std::unordered_map<uint64_t, hub_entry> by_handle;   // admitted (or queued and answered) requests
  std::unordered_map<std::string, hub_callbacks> submitted;  // sent to the scheduler, not answered yet
  generation_event scratch;  // each event of a batch in turn (its buffers reused: no allocation per token)
  static inline const char* name = "event_hub";
};

using hub_pointer = event_hub_actor::stateful_pointer<hub_state>;

void fail_everything(hub_pointer self, const error& e) {
  auto& st = self->state;
  // Callbacks may re-enter the engine (which may submit again): take the maps out first.
  auto admitted = std::move(st.by_handle);
  auto submitted = std::move(st.submitted);
  st.by_handle.clear();
  st.submitted.clear();
  for (auto& [h, entry] : admitted) entry.cb.on_error(e);
  for (auto& [id, cb] : submitted) cb.on_error(e);
  std::unordered_map<std::string, hub_callbacks> waiting;
  {
    std::lock_guard<std::mutex> lock(st.inbox->mu);
    waiting.swap(st.inbox->by_id);
  }
  for (auto& [id, cb] : waiting) cb.on_error(e);
}

void on_events(hub_pointer self, const event_batch& evs) {
  auto& st = self->state;
  generation_event& ev = st.scratch;
  for (size_t k = 0; k < evs.size(); ++k) {
    const auto& e = evs.entries[k];
    auto it = st.by_handle.find(e.request);
    if (it == st.by_handle.end()) continue;
    hub_entry& entry = it->second;
    if (e.failed) {
      auto cb = std::move(entry.cb);
      st.by_handle.erase(it);
      cb.on_error(evs.failure(k));
      continue;
    }
    // The batch carries handles; callbacks see the id. Swapped in and out: no copy, no allocation.
    evs.read(k, ev);
    std::swap(ev.request_id, entry.id);
    entry.cb.on_event(ev);
    std::swap(ev.request_id, entry.id);
    if (e.finish != finish_reason::none && ++entry.num_finished >= entry.num_choices) st.by_handle.erase(it);
  }
}

void on_submit(hub_pointer self, generation_request& req) {
  auto& st = self->state;
  hub_callbacks cb;
  {
    std::lock_guard<std::mutex> lock(st.inbox->mu);
    auto it = st.inbox->by_id.find(req.request_id);
    if (it == st.inbox->by_id.end()) return;  // failed at shutdown already
    cb = std::move(it->second);
    st.inbox->by_id.erase(it);
  }
  const std::string id = req.request_id;
  const int32_t n = std::max(1, req.n);
  st.submitted.emplace(id, std::move(cb));
  self->request(st.scheduler, caf::infinite, submit_atom_v, std::move(req), caf::actor_cast<sink_actor>(self))
      .then(
          [self, id, n](uint64_t handle) {
            count_message();
            auto& st = self->state;
            auto it = st.submitted.find(id);
            if (it == st.submitted.end()) return;
            st.by_handle.emplace(handle, hub_entry{id, n, 0, std::move(it->second)});
            st.submitted.erase(it);
          },
          [self, id](caf::error& e) {
            count_message();
            auto& st = self->state;
            auto it = st.submitted.find(id);
            if (it == st.submitted.end()) return;
            auto cb = std::move(it->second);
            st.submitted.erase(it);
            cb.on_error(from_caf_error(e));
          });
}

event_hub_actor::behavior_type hub(hub_pointer self, scheduler_actor sched, std::shared_ptr<hub_inbox> inbox) {
  self->state.scheduler = sched;
  self->state.inbox = std::move(inbox);
  self->monitor(sched);
  self->attach_functor([self, addr = sched.address()] { self->demonitor(addr); });
  self->set_down_handler([self](caf::down_msg&) {
    fail_everything(self, error{errc::draining, "the scheduler stopped"});
    self->quit();
  });
  // At shutdown (the engine lets go of the hub), whatever is still in flight ends with `draining`.
  self->set_exit_handler([self](caf::exit_msg& m) {
    fail_everything(self, error{errc::draining, "the server is shutting down"});
    self->quit(m.reason);
  });
  return {
      [self](submit_atom, generation_request& req) { on_submit(self, req); },
      [self](events_atom, const event_batch& evs) {
        count_message();
        on_events(self, evs);
      },
      [self](event_atom, const generation_event&) {},  // the hub only takes batches (with handles)
      [self](fail_atom, const error& e) { fail_everything(self, e); },
      [self](cancel_atom) {},
      [self](cancel_atom, const std::string& id) {
        // After this id's submit (both come from the engine in order); the scheduler finds it queued
        // or running, or has finished it already.
        self->send(self->state.scheduler, cancel_atom_v, id);
      },
  };
}

}  // namespace

event_hub::event_hub(caf::actor_system& sys, scheduler_actor scheduler)
    : inbox_(std::make_shared<hub_inbox>()), actor_(sys.spawn(hub, std::move(scheduler), inbox_)) {}

event_hub::~event_hub() { caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown); }

sink_actor event_hub::submit(generation_request req, event_callback on_event, error_callback on_error) {
  {
    std::lock_guard<std::mutex> lock(inbox_->mu);
    inbox_->by_id[req.request_id] = hub_callbacks{std::move(on_event), std::move(on_error)};
  }
  caf::anon_send(actor_, submit_atom_v, std::move(req));
  return sink();
}

sink_actor event_hub::sink() const { return caf::actor_cast<sink_actor>(actor_); }

}  // namespace troupe
