// The cluster links' transport: CAF's middleman with its OpenSSL module (mutual TLS with the
// cluster certificate, key and CA) unless --cluster-insecure (plain BASP, loopback only; see
// cluster_tls.h for the rule). Every publish and connect of cluster mode goes through here, so no
// cluster port is ever opened without TLS by accident.
#pragma once

#include <cstdint>
#include <string>

#include <caf/fwd.hpp>

#include "actors/cluster_messages.h"
#include "config/options.h"

namespace troupe {

// Before the actor_system exists: loads the middleman and, with TLS, CAF's OpenSSL module with
// in-memory copies of this node's credential files, read once (CAF reads them for every connection).
void prepare_cluster_transport(caf::actor_system_config& cfg, const troupe_options& opts);

// Publishes on host:port (0 = any free port); returns the bound port.
caf::expected<uint16_t> publish_on_cluster(caf::actor_system& sys, const troupe_options& opts, const worker_actor& w,
                                           uint16_t port, const std::string& host);
caf::expected<uint16_t> publish_on_cluster(caf::actor_system& sys, const troupe_options& opts, const join_actor& j,
                                           uint16_t port, const std::string& host);

// Blocking connects (TCP, TLS, CAF's handshake): call them from a thread of their own, never an actor.
caf::expected<worker_actor> connect_worker(caf::actor_system& sys, const troupe_options& opts, const host_port& to);
caf::expected<join_actor> connect_join(caf::actor_system& sys, const troupe_options& opts, const host_port& to);

// "mutual TLS (certificate ..., CA ...)" or "INSECURE plaintext ...", for the start-up log line.
std::string describe_cluster_transport(const troupe_options& opts);

}  // namespace troupe
