// Who may speak on a cluster link (docs/cluster.md, "Trust model"): the start-up rule (a router or
// worker needs --cluster-cert/--cluster-key/--cluster-ca, or --cluster-insecure with every cluster
// address on loopback), the check that those files make a usable identity, and a diagnostic TLS
// handshake that says which side refused whose certificate when a connection fails.
// Plain OpenSSL, no CAF: the links themselves run over CAF's OpenSSL module (cluster_transport.h).
#pragma once

#include <chrono>
#include <string>

#include "actors/cluster_routing.h"
#include "config/error.h"
#include "config/options.h"

namespace troupe {

// 127.0.0.0/8, ::1 (bracketed or not) and "localhost"; any other name or address is not.
bool is_loopback_host(const std::string& host);

// Every address a node of this role listens on or dials for the cluster (not the HTTP port).
std::vector<std::string> cluster_hosts(const troupe_options& opts);

// True when this node's cluster links are mutual TLS (a router or worker without --cluster-insecure).
bool cluster_tls_enabled(const troupe_options& opts);

// For a router or worker: the option rule above, then the credentials: the certificate and key
// load and match, the CA loads, and the certificate verifies against the CA (an expired or foreign
// certificate is refused here, not at the first connection). Does nothing for standalone.
status check_cluster_security(const troupe_options& opts);

// "subject CN=..., expires ..." of --cluster-cert, for the start-up log line.
std::string describe_cluster_cert(const troupe_options& opts);

// After CAF failed to connect to `to`: a TLS handshake of our own with this node's credentials.
// Returns why TLS refused the link ("the peer's certificate is not trusted ...", "the peer refused
// this node's certificate ...", "the peer does not speak TLS ..."), or "" when the TCP connection
// fails too or TLS succeeds (then TLS is not the reason). Blocks for at most about `timeout`.
std::string diagnose_tls_refusal(const troupe_options& opts, const host_port& to, std::chrono::milliseconds timeout);

}  // namespace troupe
