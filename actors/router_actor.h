// The router of cluster mode: one actor that knows every worker (connected, refused or absent),
// polls their load, picks the worker for each new request, and notices a worker's death; and the
// router-side sink actor of one request, which asks the router for a worker, submits to that
// worker's scheduler directly (tokens then stream scheduler -> sink over the middleman) and fails
// at once with a clear error when that worker goes away.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/cluster_messages.h"

namespace troupe {

// The router's view of one worker, as shown on /metrics and /health.
struct worker_snapshot {
  std::string address;                // host:port as given in --workers
  std::string state = "connecting";   // connecting | up | down | refused
  std::string reason;                 // why it is not up (lost connection, handshake refusal)
  std::string connect_error;          // the connector's last failure to reach it (written by the connector)
  bool connect_refused = false;       // that failure was TLS refusing the link (wrong or no certificate)
  bool wanted = true;                 // the connector should try to reach it
  worker_load load;                   // what routing sees
  engine_stats reported;              // the worker's last load report
  int64_t num_local_in_flight = 0;    // requests of this router on it now
  uint64_t num_lost = 0;              // requests failed because it went away
  uint64_t num_connects = 0;          // successful handshakes (1 + rejoins)

  // What /metrics and /health show: a worker whose link TLS refused is `refused`, for that reason,
  // until a connection to it succeeds.
  std::string shown_state() const { return state != "up" && connect_refused ? "refused" : state; }
  const std::string& shown_reason() const {
    return (state != "up" && connect_refused) || reason.empty() ? connect_error : reason;
  }
};

// Written by the router actor and the connector threads, read by the engine (metrics, health).
struct cluster_view {
  std::mutex mu;
  std::vector<worker_snapshot> workers;  // [num workers]: --workers in order, then workers that joined
};

// pick: the prompt's prefix hashes (prefix_hashes; empty = no prefix affinity) -> a worker.
using router_actor = caf::typed_actor<caf::replies_to<pick_atom, std::vector<uint64_t>>::with<route_ticket>,
                                      caf::reacts_to<done_atom, uint32_t, uint64_t, bool>,
                                      caf::reacts_to<connect_atom, uint32_t, worker_actor>,
                                      caf::reacts_to<announce_atom, std::string, worker_actor>,
                                      caf::reacts_to<poll_atom>>;

struct router_config {
  cluster_identity identity;          // this router's; a worker must match it
  std::vector<host_port> workers;
  std::chrono::milliseconds poll_interval{250};
  std::chrono::milliseconds handshake_timeout{5000};
};

router_actor spawn_router(caf::actor_system& sys, router_config cfg, std::shared_ptr<cluster_view> view);

// What the router publishes on --join-port: forwards announcements to the router; quits with it.
join_actor spawn_join_acceptor(caf::actor_system& sys, router_actor router);

// The per-request sink on the router (same interface as the single-node sink, so cancel works
// the same way): pick -> submit to the worker's scheduler -> events to the callbacks.
sink_actor spawn_cluster_sink(caf::actor_system& sys, router_actor router, generation_request req,
                              std::vector<uint64_t> prefix, event_callback on_event, error_callback on_error);

}  // namespace troupe
