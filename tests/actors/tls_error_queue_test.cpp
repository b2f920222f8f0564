// The OpenSSL error-queue guard (actors/tls_error_queue.h): a stale error left on the thread by a
// failed handshake must not turn another connection's "want read" into a failure. libssl's own
// SSL_read shows the failure that closed healthy cluster links; the guarded one does not.
#include "actors/tls_error_queue.h"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace troupe {
namespace {

// An established TLS connection over a socket pair (a throwaway self-signed certificate), with
// nothing in flight: a read on either end has to wait for data ("want read").
struct established_pair {
  established_pair() {
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("t"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(sctx, cert);
    SSL_CTX_use_PrivateKey(sctx, key);
    cctx = SSL_CTX_new(TLS_client_method());
    server = SSL_new(sctx);
    SSL_set_fd(server, fds[0]);
    SSL_set_accept_state(server);
    client = SSL_new(cctx);
    SSL_set_fd(client, fds[1]);
    SSL_set_connect_state(client);
    int s = 0, c = 0;
    for (int i = 0; i < 50 && (s != 1 || c != 1); ++i) {  // both ends step until done (non-blocking)
      if (c != 1) c = SSL_do_handshake(client);
      if (s != 1) s = SSL_do_handshake(server);
    }
    EXPECT_TRUE(s == 1 && c == 1) << "handshake";
    ERR_clear_error();
  }
  ~established_pair() {
    SSL_free(server);
    SSL_free(client);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    X509_free(cert);
    EVP_PKEY_free(key);
    close(fds[0]);
    close(fds[1]);
  }
  int fds[2] = {-1, -1};
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  SSL_CTX* sctx = nullptr;
  SSL_CTX* cctx = nullptr;
  SSL* server = nullptr;
  SSL* client = nullptr;
};

void leave_a_stale_error() {  // what CAF 0.17 leaves behind after a peer's failed handshake
  ERR_raise(ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER);
}

TEST(tls_error_queue, the_guard_is_what_this_binary_calls) { EXPECT_TRUE(tls_error_queue_guard_active()); }

TEST(tls_error_queue, libssl_alone_reports_a_stale_error_as_a_failure) {
  using read_fn = int (*)(SSL*, void*, int);
  auto libssl_read = reinterpret_cast<read_fn>(dlsym(RTLD_NEXT, "SSL_read"));
  ASSERT_NE(libssl_read, nullptr);
  ASSERT_NE(reinterpret_cast<void*>(libssl_read), reinterpret_cast<void*>(&::SSL_read));
  established_pair p;
  char buf[16];
  EXPECT_EQ(SSL_get_error(p.server, libssl_read(p.server, buf, sizeof buf)), SSL_ERROR_WANT_READ);
  leave_a_stale_error();
  EXPECT_EQ(SSL_get_error(p.server, libssl_read(p.server, buf, sizeof buf)), SSL_ERROR_SSL)
      << "the cause: CAF then closes this healthy link";
  ERR_clear_error();
}

TEST(tls_error_queue, the_guarded_calls_report_want_read) {
  established_pair p;
  char buf[16];
  leave_a_stale_error();
  EXPECT_EQ(SSL_get_error(p.server, SSL_read(p.server, buf, sizeof buf)), SSL_ERROR_WANT_READ);
  leave_a_stale_error();
  EXPECT_EQ(SSL_get_error(p.client, SSL_read(p.client, buf, sizeof buf)), SSL_ERROR_WANT_READ);
  leave_a_stale_error();  // a write goes through: the queue does not fail it either
  EXPECT_EQ(SSL_write(p.client, "x", 1), 1);
  EXPECT_EQ(SSL_read(p.server, buf, sizeof buf), 1);
}

}  // namespace
}  // namespace troupe
