// The extension host: runs the custom actors (filters, observers, routes) in an actor system of
// their own, so a slow or stuck extension cannot take threads from the engine, and gives the
// listener a CAF-free, callback-based face. Every call is bounded by the extension's timeout; a
// crashed extension actor fails the call it was handling and is respawned from its factory.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/error.h"
#include "troupe/extension_types.h"

namespace troupe {

class extensions;

// A call the host could not complete (the extension is unavailable, crashed or timed out, or the
// server is stopping): an HTTP status, a machine-readable code and a message. The listener turns
// it into its OpenAI error response (net/api_error.h); the host knows nothing of that format.
struct extension_failure {
  int32_t status = 500;  // 503 unavailable/draining, 504 timeout, 500 crash
  std::string code;      // "route_failed", "route_timeout", "draining"
  std::string message;
};

// A route call's answer: the extension's own response, or the host's failure.
using route_result = std::variant<route_response, extension_failure>;

struct extension_route {
  std::string name;
  std::string method;  // "*" = any
  std::string path;
  bool needs_auth = true;
};

class extension_host {
 public:
  // The named extensions (static registry) followed by `code` (may be null), spawned and running.
  // Errors: an unknown name, a route that is registered twice.
  static result<std::shared_ptr<extension_host>> start(const std::vector<std::string>& names,
                                                       const extensions* code);
  virtual ~extension_host() = default;

  virtual bool has_filters() const = 0;
  virtual bool has_observers() const = 0;
  virtual const extension_route* find_route(std::string_view path) const = 0;  // null: none

  // Runs the filter chain. `done` is called exactly once, on an actor thread: the last accepting
  // verdict (rewrite = true, params = the final params) or the first rejection; a filter that
  // times out gives 503, one that crashes 500 (code "filter_failed").
  virtual void filter(filter_request req, std::function<void(filter_verdict)> done) = 0;
  // Asks a route's actor. `done` is called exactly once, on an actor thread, with the actor's
  // response or a failure: 504 on timeout, 500 if the actor crashed, 503 unavailable/draining.
  virtual void route(const extension_route& r, route_request req, std::function<void(route_result)> done) = 0;

  // Fire-and-forget notifications of every observer (anon_send; never waits).
  virtual void observe_begin(const request_info& info) = 0;
  virtual void observe_event(const generation_event& ev) = 0;
  virtual void observe_failure(const std::string& request_id, const error& e) = 0;

  // Stops every extension actor and waits for them (bounded by the longest call timeout). Call it
  // from a thread that is not one of the host's actors; afterwards filter/route answer 503 at once
  // and notifications are dropped. Idempotent.
  virtual void stop() = 0;
};

}  // namespace troupe
