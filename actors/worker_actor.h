// The worker side of cluster mode: before the actor_system exists, load the cluster transport
// (cluster_transport.h: mutual TLS unless --cluster-insecure) and register the cluster messages
// (prepare_worker_system); after the engine's actors run, spawn the
// worker actor, which answers the router's handshake with this node's identity, limits and
// scheduler handle, and publish it on --cluster-host:--cluster-port (publish_worker).
#pragma once

#include <cstdint>

#include <caf/fwd.hpp>

#include "actors/messages.h"
#include "actors/model_loader.h"
#include "config/error.h"
#include "config/options.h"

namespace troupe {

// Does nothing unless opts.cluster.role is "worker".
void prepare_worker_system(caf::actor_system_config& cfg, const troupe_options& opts);

// Publishes the worker actor; returns the bound port (logged as "worker published on HOST:PORT").
// The worker actor quits when `sched` goes down.
result<uint16_t> publish_worker(caf::actor_system& sys, scheduler_actor sched, const loaded_model& m,
                                const troupe_options& opts);

}  // namespace troupe
