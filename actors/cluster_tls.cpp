// The cluster-link security rule, the credential check and the diagnostic handshake (see
// cluster_tls.h). The OpenSSL settings mirror what CAF 0.17's OpenSSL module does on every
// connection (libcaf_openssl session.cpp: the chain file, the key, the CA file, SSL_VERIFY_PEER |
// SSL_VERIFY_FAIL_IF_NO_PEER_CERT), so what passes here is what the links will present and accept.
#include "actors/cluster_tls.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace troupe {
namespace {

struct ctx_free {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using ctx_ptr = std::unique_ptr<SSL_CTX, ctx_free>;

// OpenSSL's queued errors as their reason texts ("tlsv1 alert unknown ca"), oldest first.
std::string ssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    std::string s = r ? r : "error " + std::to_string(e);
    if (out.find(s) == std::string::npos) out += (out.empty() ? "" : "; ") + s;
  }
  return out;
}

// An encrypted key fails to load instead of OpenSSL prompting on the terminal.
int refuse_passphrase(char*, int, int, void*) { return 0; }

status readable(const char* option, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return make_error(errc::invalid_argument, std::string("--") + option + " " + path + ": " + std::strerror(errno));
  std::fclose(f);
  return ok_status();
}

// This node's identity and trust store, loaded as CAF loads them for each connection.
result<ctx_ptr> load_identity(const cluster_options& c) {
  TROUPE_TRY(readable("cluster-cert", c.tls_cert));
  TROUPE_TRY(readable("cluster-key", c.tls_key));
  TROUPE_TRY(readable("cluster-ca", c.tls_ca));
  ERR_clear_error();
  ctx_ptr ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return make_error(errc::internal, "cannot create an OpenSSL context: " + ssl_errors());
  SSL_CTX_set_default_passwd_cb(ctx.get(), refuse_passphrase);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), c.tls_cert.c_str()) != 1)
    return make_error(errc::invalid_argument,
                      "--cluster-cert " + c.tls_cert + ": not a PEM certificate (" + ssl_errors() + ")");
  // Loading the key also checks it against the certificate ("key values mismatch").
  const bool key_ok = SSL_CTX_use_PrivateKey_file(ctx.get(), c.tls_key.c_str(), SSL_FILETYPE_PEM) == 1;
  const std::string key_errors = key_ok ? "" : ssl_errors();
  if (!key_ok && key_errors.find("mismatch") == std::string::npos)
    return make_error(errc::invalid_argument,
                      "--cluster-key " + c.tls_key + ": not an unencrypted PEM private key (" + key_errors + ")");
  if (!key_ok || SSL_CTX_check_private_key(ctx.get()) != 1)
    return make_error(errc::invalid_argument, "--cluster-key " + c.tls_key + " is not the key of --cluster-cert " +
                                                  c.tls_cert + " (" + (key_ok ? ssl_errors() : key_errors) + ")");
  if (SSL_CTX_load_verify_locations(ctx.get(), c.tls_ca.c_str(), nullptr) != 1)
    return make_error(errc::invalid_argument,
                      "--cluster-ca " + c.tls_ca + ": no PEM CA certificate in it (" + ssl_errors() + ")");
  return ctx;
}

// The node's certificate must chain to the CA for both ends of a link: peers check it as a TLS
// server certificate (when dialled) and as a client certificate (when dialling).
status verify_own_certificate(SSL_CTX* ctx, const cluster_options& c) {
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  for (auto [purpose, what] : {std::pair{X509_PURPOSE_SSL_SERVER, "a TLS server"},
                               std::pair{X509_PURPOSE_SSL_CLIENT, "a TLS client"}}) {
    X509_STORE_CTX* sc = X509_STORE_CTX_new();
    if (!sc || X509_STORE_CTX_init(sc, SSL_CTX_get_cert_store(ctx), leaf, chain) != 1) {
      X509_STORE_CTX_free(sc);
      return make_error(errc::internal, "cannot verify --cluster-cert: " + ssl_errors());
    }
    X509_STORE_CTX_set_purpose(sc, purpose);
    const bool ok = X509_verify_cert(sc) == 1;
    const int code = X509_STORE_CTX_get_error(sc);
    X509_STORE_CTX_free(sc);
    if (!ok)
      return make_error(errc::invalid_argument, "--cluster-cert " + c.tls_cert + " does not verify against --cluster-ca " +
                                                    c.tls_ca + " as " + what + ": " +
                                                    X509_verify_cert_error_string(code));
  }
  return ok_status();
}

// Blocks SIGPIPE on this thread while OpenSSL writes to a socket the peer may have closed; a
// SIGPIPE raised meanwhile is consumed (CAF's OpenSSL module does the same around its calls).
class sigpipe_guard {
 public:
  sigpipe_guard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &saved_);
  }
  ~sigpipe_guard() {
    timespec zero{};
    sigtimedwait(&pipe_, nullptr, &zero);
    pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }

 private:
  sigset_t pipe_;
  sigset_t saved_;
};

// A TCP connection to `to` within `timeout`, with read/write timeouts set; -1 on failure.
int connect_within(const host_port& to, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(to.host.c_str(), std::to_string(to.port).c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    bool ok = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
           getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    if (!ok) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return -1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

std::string classify(const std::string& errs) {
  if (contains(errs, "alert"))
    return "the peer refused this node's certificate, which --cluster-ca there does not trust (" + errs + ")";
  if (contains(errs, "wrong version number") || contains(errs, "packet length too long") ||
      contains(errs, "record layer failure") || contains(errs, "http request"))
    return "the peer does not speak TLS (does it run with --cluster-insecure?): " + errs;
  return errs.empty() ? "" : "TLS handshake failed: " + errs;
}

}  // namespace

bool is_loopback_host(const std::string& text) {
  std::string h = text;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, h.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

std::vector<std::string> cluster_hosts(const troupe_options& o) {
  const cluster_options& c = o.cluster;
  const std::string bound = c.cluster_host.empty() ? o.server.host : c.cluster_host;
  std::vector<std::string> hosts;
  if (c.role == "worker") {
    hosts.push_back(bound);
    if (!c.join.empty()) {
      auto j = parse_host_port(c.join);
      hosts.push_back(j ? j->host : c.join);
    }
  } else if (c.role == "router") {
    for (const std::string& w : c.workers) {
      auto a = parse_host_port(w);
      hosts.push_back(a ? a->host : w);
    }
    if (c.join_port) hosts.push_back(bound);
  }
  return hosts;
}

bool cluster_tls_enabled(const troupe_options& o) {
  return (o.cluster.role == "worker" || o.cluster.role == "router") && !o.cluster.insecure;
}

status check_cluster_security(const troupe_options& o) {
  const cluster_options& c = o.cluster;
  const bool any_tls = !c.tls_cert.empty() || !c.tls_key.empty() || !c.tls_ca.empty();
  if (c.role != "worker" && c.role != "router") {
    if (any_tls || c.insecure)
      return make_error(errc::invalid_argument,
                        "--cluster-cert, --cluster-key, --cluster-ca and --cluster-insecure are only for --role router "
                        "or --role worker");
    return ok_status();
  }
  if (c.insecure) {
    if (any_tls)
      return make_error(errc::invalid_argument, "--cluster-insecure turns TLS off: leave out --cluster-cert, "
                                                "--cluster-key and --cluster-ca, or drop --cluster-insecure");
    for (const std::string& h : cluster_hosts(o))
      if (!is_loopback_host(h))
        return make_error(errc::invalid_argument,
                          "--cluster-insecure is allowed only when every cluster address is loopback, and '" + h +
                              "' is not: off loopback, cluster links need mutual TLS with --cluster-cert, "
                              "--cluster-key and --cluster-ca (tools/make_cluster_certs.sh makes them)");
    return ok_status();
  }
  std::string missing;
  for (auto [name, value] : {std::pair{"--cluster-cert", &c.tls_cert}, std::pair{"--cluster-key", &c.tls_key},
                             std::pair{"--cluster-ca", &c.tls_ca}})
    if (value->empty()) missing += (missing.empty() ? "" : ", ") + std::string(name);
  if (!missing.empty())
    return make_error(errc::invalid_argument,
                      "--role " + c.role + " needs the cluster credentials --cluster-cert, --cluster-key and "
                      "--cluster-ca (missing: " + missing + "): cluster links are mutual TLS, see docs/cluster.md "
                      "(tools/make_cluster_certs.sh makes a CA and certificates); on loopback only, "
                      "--cluster-insecure true runs them in plaintext without authentication");
  auto ctx = load_identity(c);
  if (!ctx) return ctx.err();
  return verify_own_certificate(ctx->get(), c);
}

std::string describe_cluster_cert(const troupe_options& o) {
  auto ctx = load_identity(o.cluster);
  if (!ctx) return ctx.err().message;
  X509* leaf = SSL_CTX_get0_certificate(ctx->get());
  char subject[256] = {0};
  X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof subject);
  std::string out = std::string("certificate ") + subject;
  if (BIO* b = BIO_new(BIO_s_mem())) {
    if (ASN1_TIME_print(b, X509_get0_notAfter(leaf)) == 1) {
      char* p = nullptr;
      const long n = BIO_get_mem_data(b, &p);
      out += ", valid until " + std::string(p, static_cast<size_t>(n));
    }
    BIO_free(b);
  }
  return out;
}

std::string diagnose_tls_refusal(const troupe_options& o, const host_port& to, std::chrono::milliseconds timeout) {
  if (!cluster_tls_enabled(o)) return "";
  auto ctx = load_identity(o.cluster);
  if (!ctx) return "";  // the files changed since start-up (the links use the copies read then)
  SSL_CTX_set_verify(ctx->get(), SSL_VERIFY_PEER, nullptr);
  const int fd = connect_within(to, timeout);
  if (fd < 0) return "";
  sigpipe_guard guard;
  SSL* ssl = SSL_new(ctx->get());
  std::string out;
  if (ssl && SSL_set_fd(ssl, fd) == 1) {
    ERR_clear_error();
    if (SSL_connect(ssl) != 1) {
      const long v = SSL_get_verify_result(ssl);
      const std::string errs = ssl_errors();
      if (v != X509_V_OK)
        out = std::string("the peer's certificate is not trusted by --cluster-ca (") + X509_verify_cert_error_string(v) +
              ")";
      else
        out = classify(errs);
    } else {
      // TLS 1.3: the server checks this node's certificate after the client finished, so its
      // verdict arrives as an alert on the first read; a CAF peer that accepts sends its BASP
      // handshake instead.
      char buf[64];
      if (SSL_read(ssl, buf, sizeof buf) <= 0) out = classify(ssl_errors());
    }
  }
  SSL_free(ssl);
  close(fd);
  return out;
}

}  // namespace troupe
