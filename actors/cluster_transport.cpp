// CAF 0.17's middleman with or without its OpenSSL module (see cluster_transport.h). With TLS the
// BASP broker only ever sees bytes that came through a handshake in which both sides presented a
// certificate signed by the cluster CA: an unauthenticated peer never gets a BASP header read, so
// the payload size such a header announces (which BASP 0.17 allocates unchecked) is never allocated.
#include "actors/cluster_transport.h"

#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/openssl/remote_actor.hpp>

#include "actors/cluster_tls.h"
#include "actors/tls_error_queue.h"
#include "config/log.h"

namespace troupe {
namespace {

// CAF 0.17 reads the credential files again for every new connection and aborts the process
// when one is missing or unreadable then (CAF_RAISE_ERROR on the multiplexer thread). So the
// files are read once here, into in-memory files (memfd) that CAF opens through
// /proc/self/fd: what was checked at start-up is what every link uses, and files moved or
// half-rewritten later cannot take a running node down. The descriptors live as long as the process.
std::string snapshot(const std::string& path, const char* name) {
  if (path.empty()) return path;  // not a serve command (check_cluster_security guards those)
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const int fd = in ? memfd_create(name, MFD_CLOEXEC) : -1;
  if (fd >= 0 && write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()))
    return "/proc/self/fd/" + std::to_string(fd);
  if (fd >= 0) close(fd);
  logger("cluster")->warn("cannot keep an in-memory copy of {}: CAF will read the file at each connection", path);
  std::error_code ec;
  auto p = std::filesystem::absolute(path, ec);
  return ec ? path : p.string();
}

template <class Handle>
caf::expected<uint16_t> publish_handle(caf::actor_system& sys, const troupe_options& opts, const Handle& h,
                                       uint16_t port, const std::string& host) {
  if (cluster_tls_enabled(opts)) return caf::openssl::publish(h, port, host.c_str(), true);
  return sys.middleman().publish(h, port, host.c_str(), true);
}

template <class Handle>
caf::expected<Handle> connect_handle(caf::actor_system& sys, const troupe_options& opts, const host_port& to) {
  if (cluster_tls_enabled(opts)) return caf::openssl::remote_actor<Handle>(sys, to.host, to.port);
  return sys.middleman().remote_actor<Handle>(to.host, to.port);
}

}  // namespace

void prepare_cluster_transport(caf::actor_system_config& cfg, const troupe_options& opts) {
  cfg.load<caf::io::middleman>();
  if (!cluster_tls_enabled(opts)) return;
  // Any of these set turns on CAF's authenticated mode: SSL_VERIFY_PEER |
  // SSL_VERIFY_FAIL_IF_NO_PEER_CERT against the CA file, on both ends of every link.
  cfg.openssl_certificate = snapshot(opts.cluster.tls_cert, "troupe-cluster-cert");
  cfg.openssl_key = snapshot(opts.cluster.tls_key, "troupe-cluster-key");
  cfg.openssl_cafile = snapshot(opts.cluster.tls_ca, "troupe-cluster-ca");
  cfg.load<caf::openssl::manager>();
  if (!tls_error_queue_guard_active())
    logger("cluster")->warn("OpenSSL's error queue guard is not active in this binary: a failed TLS handshake may "
                            "close other cluster links (see actors/tls_error_queue.h)");
}

caf::expected<uint16_t> publish_on_cluster(caf::actor_system& sys, const troupe_options& opts, const worker_actor& w,
                                           uint16_t port, const std::string& host) {
  return publish_handle(sys, opts, w, port, host);
}

caf::expected<uint16_t> publish_on_cluster(caf::actor_system& sys, const troupe_options& opts, const join_actor& j,
                                           uint16_t port, const std::string& host) {
  return publish_handle(sys, opts, j, port, host);
}

caf::expected<worker_actor> connect_worker(caf::actor_system& sys, const troupe_options& opts, const host_port& to) {
  return connect_handle<worker_actor>(sys, opts, to);
}

caf::expected<join_actor> connect_join(caf::actor_system& sys, const troupe_options& opts, const host_port& to) {
  return connect_handle<join_actor>(sys, opts, to);
}

std::string describe_cluster_transport(const troupe_options& opts) {
  if (!cluster_tls_enabled(opts))
    return "INSECURE: plaintext with no authentication (--cluster-insecure, loopback only)";
  return "mutual TLS (" + describe_cluster_cert(opts) + "; peers must chain to " + opts.cluster.tls_ca + ")";
}

}  // namespace troupe
