// faulty_filter: a deliberately broken request filter for tests and demonstrations. On a request
// with the header `x-troupe-fault: crash` it throws (the actor dies: that request gets HTTP 500 and
// the actor is respawned); with `x-troupe-fault: hang` it never answers (HTTP 503 after its 1 s
// timeout). Every other request passes unchanged.
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/extension.h"

namespace {

struct faulty_state {
  std::vector<caf::typed_response_promise<troupe::filter_verdict>> never_answered;  // "hang"
  static inline const char* name = "faulty_filter";
};

troupe::request_filter_actor::behavior_type faulty(
    troupe::request_filter_actor::stateful_pointer<faulty_state> self) {
  return {
      [self](troupe::filter_atom, const troupe::filter_request& r) {
        auto rp = self->make_response_promise<troupe::filter_verdict>();
        for (const auto& h : r.http.headers) {
          if (h.name != "x-troupe-fault") continue;
          if (h.value == "crash") throw std::runtime_error("faulty_filter: crash requested");
          if (h.value == "hang") {
            // Not blocking: the handler returns at once, the answer simply never comes.
            self->state.never_answered.push_back(rp);
            return rp;
          }
        }
        rp.deliver(troupe::filter_verdict::accept_as_is());
        return rp;
      },
  };
}

void install(troupe::extensions& ex) {
  ex.add_filter("faulty_filter", [](caf::actor_system& sys) { return sys.spawn(faulty); },
                std::chrono::milliseconds(1000));
}

}  // namespace

TROUPE_REGISTER_EXTENSION(faulty_filter, "faulty_filter", install)
