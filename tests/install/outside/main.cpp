// An extension written outside the troupe tree, against the installed package only (no internal
// header is installed): a request filter, a stream observer and a custom route, each asked once
// through its typed interface, plus a round trip of the public values. Exit code 0: passed.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <troupe/error.h>
#include <troupe/extension.h>
#include <troupe/generation.h>
#include <troupe/sampling_params.h>
#include <troupe/serve.h>

namespace {

troupe::request_filter_actor::behavior_type short_prompts() {
  return {
      [](troupe::filter_atom, const troupe::filter_request& r) -> troupe::filter_verdict {
        if (r.request.prompt_ids.size() > 4) return troupe::filter_verdict::reject(400, "prompt too long", "too_long");
        return troupe::filter_verdict::accept_as_is();
      },
  };
}

troupe::route_handler_actor::behavior_type echo_route() {
  return {
      [](troupe::route_atom, const troupe::route_request& r) -> troupe::route_response {
        return {200, "text/plain", r.http.method + " " + r.http.path + " " + r.body};
      },
  };
}

// Counts completion tokens; answers nothing (observers are told, never asked).
troupe::stream_observer_actor::behavior_type counter(troupe::stream_observer_actor::pointer, int* tokens) {
  return {
      [](troupe::begin_atom, const troupe::request_info&) {},
      [tokens](troupe::event_atom, const troupe::generation_event& e) { *tokens += static_cast<int>(e.token_ids.size()); },
      [](troupe::fail_atom, const std::string&, const troupe::error&) {},
  };
}

bool check(bool ok, const char* what) {
  if (!ok) std::fprintf(stderr, "FAILED: %s\n", what);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  troupe::extensions ext;
  ext.add_filter("short_prompts", [](caf::actor_system& sys) { return sys.spawn(short_prompts); });
  ext.add_route("echo", "POST", "/echo", [](caf::actor_system& sys) { return sys.spawn(echo_route); });
  // `outside serve --model ...` would run a server with these extensions (linked, not run here).
  if (argc > 1) return troupe::serve_main(argc, argv, &ext);

  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::troupe_api>();
  cfg.add_message_types<caf::id_block::troupe_ext>();
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  bool ok = true;

  auto filter = ext.filters().front().make(sys);
  troupe::filter_request req;
  req.request.prompt_ids = {1, 2, 3, 4, 5};
  int status = -1;
  self->request(filter, std::chrono::seconds(5), troupe::filter_atom_v, req)
      .receive([&](troupe::filter_verdict& v) { status = v.accept ? 200 : v.status; }, [&](caf::error&) {});
  ok &= check(status == 400, "the filter rejects a five-token prompt with 400");

  auto route = ext.routes().front().make(sys);
  troupe::route_request rr;
  rr.http.method = "POST";
  rr.http.path = "/echo";
  rr.body = "hi";
  std::string body;
  self->request(route, std::chrono::seconds(5), troupe::route_atom_v, rr)
      .receive([&](troupe::route_response& r) { body = r.body; }, [&](caf::error&) {});
  ok &= check(body == "POST /echo hi", "the route echoes method, path and body");

  int tokens = 0;
  {
    auto obs = sys.spawn(counter, &tokens);
    troupe::generation_event ev;
    ev.token_ids = {7, 8, 9};
    self->send(obs, troupe::event_atom_v, ev);
    self->send_exit(obs, caf::exit_reason::user_shutdown);
    self->wait_for(obs);
  }
  ok &= check(tokens == 3, "the observer saw the event's three tokens");

  // The public values cross nodes: a verdict that rewrites sampling params survives a round trip.
  troupe::sampling_params p;
  p.temperature = 0.5f;
  p.seed = 42;
  auto verdict = troupe::filter_verdict::accept_with(p);
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  ok &= check(!sink(verdict), "serialize a filter_verdict");
  troupe::filter_verdict back;
  caf::binary_deserializer source{sys, buf};
  ok &= check(!source(back), "deserialize a filter_verdict");
  ok &= check(back.rewrite && back.params.temperature == 0.5f && back.params.seed == 42u,
              "the verdict's sampling params survive the round trip");

  self->send_exit(filter, caf::exit_reason::user_shutdown);
  self->send_exit(route, caf::exit_reason::user_shutdown);
  std::printf("verdict %d, route '%s', observed %d tokens; extensions linked by name: %zu\n", status, body.c_str(),
              tokens, troupe::extension_registry::names().size());
  return ok ? 0 : 1;
}
