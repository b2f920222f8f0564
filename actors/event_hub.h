// The engine's one sink for all of its requests: it submits each request to the scheduler, gets
// every step's events as one batched message (request handles, not ids) and fans them out to the
// requests' callbacks on its own thread. Replaces a sink actor per request on the local engine: the
// scheduler sends one message per step to it whatever the batch size, and monitors one actor.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <caf/fwd.hpp>

#include "actors/engine.h"
#include "actors/messages.h"

namespace troupe {

// What the engine's thread hands the hub for one request (by id), before the hub's submit message.
struct hub_callbacks {
  event_callback on_event;
  error_callback on_error;
};

struct hub_inbox {
  std::mutex mu;
  std::unordered_map<std::string, hub_callbacks> by_id;
};

using event_hub_actor = sink_actor::extend<caf::reacts_to<submit_atom, generation_request>>;

class event_hub {
 public:
  event_hub(caf::actor_system& sys, scheduler_actor scheduler);
  ~event_hub();  // the hub quits (it fails what is still in flight with `draining`)
  event_hub(const event_hub&) = delete;
  event_hub& operator=(const event_hub&) = delete;

  // Hands the request to the hub (callbacks run on the hub's thread). Ids must be unique among
  // in-flight requests (the caller's request_registry sees to it). Returns the sink to cancel
  // through: send it (cancel_atom, request_id).
  sink_actor submit(generation_request req, event_callback on_event, error_callback on_error);
  sink_actor sink() const;

 private:
  std::shared_ptr<hub_inbox> inbox_;
  event_hub_actor actor_;
};

}  // namespace troupe
