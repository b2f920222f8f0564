// The sink actor's behaviour (see sink_actor.h).
#include "actors/sink_actor.h"

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/message_count.h"

namespace troupe {
namespace {

struct sink_state {
  int32_t num_choices = 1;
  int32_t num_finished = 0;
  bool done = false;
  event_callback on_event;
  error_callback on_error;
  std::string request_id;
  scheduler_actor scheduler;
  generation_event scratch;  // each event of a batch in turn
  static inline const char* name = "sink";
};

using sink_pointer = sink_actor::stateful_pointer<sink_state>;

void finish_with_error(sink_pointer self, const error& e) {
  if (!self->state.done) {
    self->state.done = true;
    self->state.on_error(e);
  }
  self->quit();
}

void handle_event(sink_pointer self, const generation_event& ev) {
  auto& st = self->state;
  if (st.done) return;
  st.on_event(ev);
  if (ev.finish != finish_reason::none && ++st.num_finished >= st.num_choices) {
    st.done = true;
    self->quit();
  }
}

sink_actor::behavior_type sink(sink_pointer self, scheduler_actor sched, generation_request req, event_callback on_event,
                               error_callback on_error, std::chrono::milliseconds submit_timeout) {
  self->state.num_choices = std::max(1, req.n);
  self->state.on_event = std::move(on_event);
  self->state.on_error = std::move(on_error);
  self->state.request_id = req.request_id;
  self->state.scheduler = sched;
  self->monitor(sched);
  // CAF 0.17 keeps a monitor in the scheduler's list until the scheduler dies, and the list's weak
  // reference keeps the sink's whole allocation (about 1 KiB) alive: leave it when the sink ends,
  // however it ends, or every request leaks one (found by tools/soak.py).
  self->attach_functor([self, addr = sched.address()] { self->demonitor(addr); });
  self->set_down_handler([self](caf::down_msg&) {
    finish_with_error(self, error{errc::draining, "the scheduler stopped"});
  });
  self->request(sched, submit_timeout, submit_atom_v, std::move(req), caf::actor_cast<sink_actor>(self))
      .then([](uint64_t) { count_message(); },
            [self](caf::error& e) {
              count_message();
              finish_with_error(self, from_caf_error(e));
            });
  return {
      [self](event_atom, const generation_event& ev) {
        count_message();
        handle_event(self, ev);
      },
      [self](events_atom, const event_batch& evs) {
        count_message();
        auto& st = self->state;
        for (size_t k = 0; k < evs.size(); ++k) {  // all this request's (one sink per request)
          if (evs.entries[k].failed) return finish_with_error(self, evs.failure(k));
          evs.read(k, st.scratch);
          if (st.scratch.request_id != st.request_id) st.scratch.request_id = st.request_id;
          handle_event(self, st.scratch);
        }
      },
      [self](fail_atom, const error& e) {
        count_message();
        finish_with_error(self, e);
      },
      [self](cancel_atom) { self->send(self->state.scheduler, cancel_atom_v, self->state.request_id); },
      [self](cancel_atom, const std::string&) {  // this sink has one request
        self->send(self->state.scheduler, cancel_atom_v, self->state.request_id);
      },
  };
}

}  // namespace

sink_actor spawn_sink(caf::actor_system& sys, scheduler_actor scheduler, generation_request req,
                      event_callback on_event, error_callback on_error, std::chrono::milliseconds submit_timeout) {
  return sys.spawn(sink, std::move(scheduler), std::move(req), std::move(on_event), std::move(on_error),
                   submit_timeout);
}

}  // namespace troupe
