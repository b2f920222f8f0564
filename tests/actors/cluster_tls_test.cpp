// Who may run a cluster node (actors/cluster_tls.h): the credentials a router or worker needs,
// --cluster-insecure only on loopback, and the start-up check of real certificates made by
// tools/make_cluster_certs.sh (a key of another certificate, a certificate of another CA).
#include "actors/cluster_tls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "config/cli.h"
#include "support/cli_parse.h"

namespace troupe {
namespace {

using testing::parse;

troupe_options options_of(std::initializer_list<const char*> args) {
  auto r = parse(std::vector<std::string>(args.begin(), args.end()));
  EXPECT_EQ(r.command, "serve") << r.output;
  return r.options;
}

bool mentions(const status& st, const std::string& what) {
  return !st && st.err().message.find(what) != std::string::npos;
}

TEST(cluster_tls, loopback_means_127_slash_8_ipv6_loopback_and_localhost) {
  for (const char* h : {"127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"}) EXPECT_TRUE(is_loopback_host(h)) << h;
  // A wildcard bind, a LAN address, a name that could resolve anywhere, a v4-looking name.
  for (const char* h : {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "worker-a", "localhost.evil.com", "127.1", ""})
    EXPECT_FALSE(is_loopback_host(h)) << h;
}

TEST(cluster_tls, a_router_or_worker_without_credentials_is_refused) {
  auto st = check_cluster_security(options_of({"serve", "--role", "worker"}));
  EXPECT_TRUE(mentions(st, "--cluster-cert, --cluster-key and --cluster-ca")) << st.err().message;
  EXPECT_TRUE(mentions(st, "--cluster-insecure")) << "names the loopback-only way out";
  auto some = check_cluster_security(options_of({"serve", "--role", "router", "--workers", "127.0.0.1:1",
                                                 "--cluster-cert", "a.pem"}));
  EXPECT_TRUE(mentions(some, "missing: --cluster-key, --cluster-ca")) << some.err().message;
  EXPECT_TRUE(check_cluster_security(options_of({"serve"})));  // standalone needs nothing
}

TEST(cluster_tls, insecure_is_allowed_only_when_every_cluster_address_is_loopback) {
  EXPECT_TRUE(check_cluster_security(options_of({"serve", "--role", "worker", "--cluster-insecure", "true"})));
  EXPECT_TRUE(check_cluster_security(options_of({"serve", "--role", "router", "--workers", "127.0.0.1:9,[::1]:9",
                                                 "--join-port", "0", "--cluster-insecure", "true"})));
  // The worker's published address (--cluster-host, else --host), its --join target, the
  // router's workers and its join-port address: each one off loopback is named.
  struct bad_case {
    std::initializer_list<const char*> args;
    const char* named;
  };
  for (const bad_case& c : {
           bad_case{{"serve", "--role", "worker", "--host", "0.0.0.0", "--cluster-insecure", "true"}, "'0.0.0.0'"},
           bad_case{{"serve", "--role", "worker", "--cluster-host", "10.0.0.5", "--cluster-insecure", "true"},
                    "'10.0.0.5'"},
           bad_case{{"serve", "--role", "worker", "--join", "router-a:9000", "--cluster-insecure", "true"},
                    "'router-a'"},
           bad_case{{"serve", "--role", "router", "--workers", "127.0.0.1:9,10.1.1.1:9", "--cluster-insecure", "true"},
                    "'10.1.1.1'"},
           bad_case{{"serve", "--role", "router", "--join-port", "0", "--host", "192.168.1.2", "--cluster-insecure",
                     "true"},
                    "'192.168.1.2'"},
       }) {
    auto st = check_cluster_security(options_of(c.args));
    EXPECT_TRUE(mentions(st, c.named)) << (st ? "accepted" : st.err().message);
    EXPECT_TRUE(mentions(st, "only when every cluster address is loopback"));
  }
  auto both = check_cluster_security(
      options_of({"serve", "--role", "worker", "--cluster-insecure", "true", "--cluster-ca", "ca.pem"}));
  EXPECT_TRUE(mentions(both, "turns TLS off")) << "credentials and insecure contradict each other";
  auto standalone = check_cluster_security(options_of({"serve", "--cluster-insecure", "true"}));
  EXPECT_TRUE(mentions(standalone, "only for --role router or --role worker"));
}

// Real credentials from the operators' script, in a temporary directory removed at the end.
class cluster_certs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("troupe-tls-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    const std::string script = std::string(TROUPE_SOURCE_DIR) + "/tools/make_cluster_certs.sh";
    for (const char* sub : {"one", "two"}) {
      const std::string cmd = "bash " + script + " " + (dir_ / sub).string() + " node-a node-b >/dev/null";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string file(const char* sub, const char* name) const { return (dir_ / sub / name).string(); }
  status check(const std::string& cert, const std::string& key, const std::string& ca) const {
    troupe_options o;
    o.cluster.role = "worker";
    o.cluster.tls_cert = cert;
    o.cluster.tls_key = key;
    o.cluster.tls_ca = ca;
    return check_cluster_security(o);
  }
  std::filesystem::path dir_;
};

TEST_F(cluster_certs, a_node_certificate_signed_by_the_cluster_ca_passes) {
  auto st = check(file("one", "node-a.pem"), file("one", "node-a.key"), file("one", "ca.pem"));
  EXPECT_TRUE(st) << st.err().message;
}

TEST_F(cluster_certs, mismatched_or_foreign_credentials_are_named) {
  auto key = check(file("one", "node-a.pem"), file("one", "node-b.key"), file("one", "ca.pem"));
  EXPECT_TRUE(mentions(key, "is not the key of --cluster-cert")) << (key ? "accepted" : key.err().message);
  auto foreign = check(file("two", "node-a.pem"), file("two", "node-a.key"), file("one", "ca.pem"));
  EXPECT_TRUE(mentions(foreign, "does not verify against --cluster-ca")) << (foreign ? "accepted" : foreign.err().message);
  auto missing = check(file("one", "nope.pem"), file("one", "node-a.key"), file("one", "ca.pem"));
  EXPECT_TRUE(mentions(missing, "--cluster-cert")) << (missing ? "accepted" : missing.err().message);
  EXPECT_TRUE(mentions(missing, "No such file"));
  auto not_pem = check(file("one", "node-a.pem"), file("one", "node-a.key"), file("one", "ca.srl"));
  EXPECT_TRUE(mentions(not_pem, "--cluster-ca")) << (not_pem ? "accepted" : not_pem.err().message);
}

}  // namespace
}  // namespace troupe
