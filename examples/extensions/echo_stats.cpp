// echo_stats: a custom route, /v1/echo-stats (any method, API key required like /v1). Answers
// with the request it received (method, path, body) and the route's own counters: calls served
// and body bytes received since the actor started.
#include <string>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>

#include "troupe/extension.h"

namespace {

struct echo_state {
  int64_t num_calls = 0;
  int64_t bytes_total = 0;
  static inline const char* name = "echo_stats";
};

troupe::route_handler_actor::behavior_type echo(troupe::route_handler_actor::stateful_pointer<echo_state> self) {
  return {
      [self](troupe::route_atom, const troupe::route_request& r) -> troupe::route_response {
        auto& st = self->state;
        ++st.num_calls;
        st.bytes_total += static_cast<int64_t>(r.body.size());
        nlohmann::json out = {{"object", "echo_stats"},
                              {"method", r.http.method},
                              {"path", r.http.path},
                              {"echo", r.body},
                              {"num_headers", r.http.headers.size()},
                              {"calls", st.num_calls},
                              {"bytes_total", st.bytes_total}};
        return troupe::route_response{200, "application/json", out.dump()};
      },
  };
}

void install(troupe::extensions& ex) {
  ex.add_route("echo_stats", "*", "/v1/echo-stats", [](caf::actor_system& sys) { return sys.spawn(echo); });
}

}  // namespace

TROUPE_REGISTER_EXTENSION(echo_stats, "echo_stats", install)
