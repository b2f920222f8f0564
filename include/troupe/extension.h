// The public extension API: the typed interfaces of the three extension points (request filter,
// stream observer, custom route), the messages they exchange, and how extensions are registered:
// in code (troupe::extensions, handed to the listener before start) or by name from the config
// (`"extensions": [...]`) for extensions linked into the binary (TROUPE_REGISTER_EXTENSION).
// Contracts: see docs/custom-actors.md. In short: never block a handler (use response promises
// and delayed_send); every call from the server is bounded by a timeout; a crashed extension actor
// fails only the call it was handling and is respawned from its factory.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/type_id.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/error.h"
#include "troupe/extension_types.h"
#include "troupe/messages.h"  // event/fail atoms, inspectors of the values below, troupe_api

namespace troupe {

// Atoms of the extension protocols (text <= 10 characters).
using filter_atom = caf::atom_constant<caf::atom("xfilter")>;
using begin_atom = caf::atom_constant<caf::atom("xbegin")>;
using route_atom = caf::atom_constant<caf::atom("xroute")>;
constexpr filter_atom filter_atom_v{};
constexpr begin_atom begin_atom_v{};
constexpr route_atom route_atom_v{};

// --- extension points ------------------------------------------------------------------------

// 1. Request filter: asked once per generation request before admission; answers within its
//    timeout (a late, missing or crashed answer fails that request with 503/500).
using request_filter_actor = caf::typed_actor<caf::replies_to<filter_atom, filter_request>::with<filter_verdict>>;

// 2. Stream observer: told asynchronously (anon_send, never awaited) when a request starts, of
//    each of its events (the last event of each choice carries the usage), and of a failure.
using stream_observer_actor = caf::typed_actor<caf::reacts_to<begin_atom, request_info>,
                                               caf::reacts_to<event_atom, generation_event>,
                                               caf::reacts_to<fail_atom, std::string, error>>;

// 3. Custom route: asked for each HTTP request on its (method, path); its reply is written as
//    the response. No reply within the timeout: 504; a crash: 500.
using route_handler_actor = caf::typed_actor<caf::replies_to<route_atom, route_request>::with<route_response>>;

// --- registration in code ---------------------------------------------------------------------

// Factories spawn the extension's actor in the extension actor system (called at start and again
// whenever the actor dies, so state that must survive a crash belongs outside the actor).
class extensions {
 public:
  using filter_factory = std::function<request_filter_actor(caf::actor_system&)>;
  using observer_factory = std::function<stream_observer_actor(caf::actor_system&)>;
  using route_factory = std::function<route_handler_actor(caf::actor_system&)>;

  struct filter_entry {
    std::string name;
    filter_factory make;
    std::chrono::milliseconds timeout;
  };
  struct observer_entry {
    std::string name;
    observer_factory make;
  };
  struct route_entry {
    std::string name;
    std::string method;  // "GET", "POST", or "*" for any
    std::string path;    // exact path; built-in routes take precedence
    route_factory make;
    std::chrono::milliseconds timeout;
    bool needs_auth;     // require the server's --api-key like the /v1 routes
  };

  // Filters run in the order they were added; each sees the params the previous one accepted.
  extensions& add_filter(std::string name, filter_factory make,
                         std::chrono::milliseconds timeout = std::chrono::seconds(2));
  extensions& add_observer(std::string name, observer_factory make);
  extensions& add_route(std::string name, std::string method, std::string path, route_factory make,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10), bool needs_auth = true);
  // Appends everything `other` registered.
  extensions& merge(const extensions& other);

  const std::vector<filter_entry>& filters() const { return filters_; }
  const std::vector<observer_entry>& observers() const { return observers_; }
  const std::vector<route_entry>& routes() const { return routes_; }
  bool empty() const { return filters_.empty() && observers_.empty() && routes_.empty(); }

 private:
  std::vector<filter_entry> filters_;
  std::vector<observer_entry> observers_;
  std::vector<route_entry> routes_;
};

// --- registration by name (config key "extensions") -------------------------------------------

// An installer adds one named extension's filters/observers/routes to a set.
using extension_installer = std::function<void(extensions&)>;

// The static registry of extensions linked into the binary. Thread-safe; usually filled by
// TROUPE_REGISTER_EXTENSION at static-initialization time.
struct extension_registry {
  static bool add(const std::string& name, extension_installer install);  // false: name taken
  static std::vector<std::string> names();                                // sorted
  // The set made of the named extensions, in the given order; an unknown name is an error that
  // lists the known ones.
  static result<extensions> resolve(const std::vector<std::string>& names);
};

}  // namespace troupe

// Registers `installer` (a callable taking troupe::extensions&) under "name". Put it in a .cpp that
// is linked into the executable as an object file (not only through a static library, whose unused
// objects the linker drops).
#define TROUPE_REGISTER_EXTENSION(ident, name, installer) \
  namespace {                                             \
  const bool troupe_extension_registered_##ident =        \
      ::troupe::extension_registry::add(name, installer); \
  }

// --- inspectors and type IDs -----------------------------------------------------------------

namespace troupe {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_header& x) {
  return f(caf::meta::type_name("http_header"), x.name, x.value);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_metadata& x) {
  return f(caf::meta::type_name("http_metadata"), x.method, x.path, x.api_key, x.headers);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, filter_request& x) {
  return f(caf::meta::type_name("filter_request"), x.request, x.http);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, filter_verdict& x) {
  return f(caf::meta::type_name("filter_verdict"), x.accept, x.rewrite, x.params, x.status, x.message, x.code);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_info& x) {
  return f(caf::meta::type_name("request_info"), x.request_id, x.http, x.num_prompt_tokens, x.n, x.params);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, route_request& x) {
  return f(caf::meta::type_name("route_request"), x.http, x.body);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, route_response& x) {
  return f(caf::meta::type_name("route_response"), x.status, x.content_type, x.body);
}

}  // namespace troupe

// Chained after troupe_api inside the public range: never overlaps troupe's internal blocks.
CAF_BEGIN_TYPE_ID_BLOCK(troupe_ext, caf::id_block::troupe_api::end)
CAF_ADD_TYPE_ID(troupe_ext, (troupe::http_header))
CAF_ADD_TYPE_ID(troupe_ext, (std::vector<troupe::http_header>))
CAF_ADD_TYPE_ID(troupe_ext, (troupe::http_metadata))
CAF_ADD_TYPE_ID(troupe_ext, (troupe::filter_request))
CAF_ADD_TYPE_ID(troupe_ext, (troupe::filter_verdict))
CAF_ADD_TYPE_ID(troupe_ext, (troupe::request_info))
CAF_ADD_TYPE_ID(troupe_ext, (troupe::route_request))
CAF_ADD_TYPE_ID(troupe_ext, (troupe::route_response))
CAF_END_TYPE_ID_BLOCK(troupe_ext)

static_assert(caf::id_block::troupe_ext::begin >= caf::id_block::troupe_api::end &&
                  caf::id_block::troupe_ext::end <= ::troupe::first_internal_type_id,
              "the public troupe_ext block must stay inside the public type-ID range");
