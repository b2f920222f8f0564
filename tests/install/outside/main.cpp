// An extension written outside the troupe tree: a request filter that rejects prompts longer than
// four tokens, registered in code and asked once through its typed interface. Exit code 0: passed.
#include <chrono>
#include <cstdio>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <troupe/extension.h>

namespace {

troupe::request_filter_actor::behavior_type short_prompts() {
  return {
      [](troupe::filter_atom, const troupe::filter_request& r) -> troupe::filter_verdict {
        if (r.request.prompt_ids.size() > 4) return troupe::filter_verdict::reject(400, "prompt too long", "too_long");
        return troupe::filter_verdict::accept_as_is();
      },
  };
}

}  // namespace

int main() {
  troupe::extensions ext;
  ext.add_filter("short_prompts", [](caf::actor_system& sys) { return sys.spawn(short_prompts); });

  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::troupe>();
  cfg.add_message_types<caf::id_block::troupe_ext>();
  caf::actor_system sys{cfg};
  auto filter = ext.filters().front().make(sys);
  caf::scoped_actor self{sys};
  troupe::filter_request req;
  req.request.prompt_ids = {1, 2, 3, 4, 5};
  int status = -1;
  self->request(filter, std::chrono::seconds(5), troupe::filter_atom_v, req)
      .receive([&](troupe::filter_verdict& v) { status = v.accept ? 200 : v.status; }, [&](caf::error&) {});
  self->send_exit(filter, caf::exit_reason::user_shutdown);
  std::printf("verdict %d; extensions linked by name: %zu\n", status, troupe::extension_registry::names().size());
  return status == 400 ? 0 : 1;
}
