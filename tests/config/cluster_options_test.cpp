// Cluster-mode options (docs/cluster.md): role, worker addresses from the command line and from a
// config file list, and the clear errors of a router without workers or a bad address.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/cli.h"
#include "config/option_table.h"
#include "support/cli_parse.h"

namespace troupe {
namespace {

using testing::parse;

TEST(cluster_options, router_takes_worker_addresses) {
  auto r = parse({"serve", "--role", "router", "--workers", "10.0.0.1:8001,host-b:9000"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_EQ(r.options.cluster.role, "router");
  EXPECT_EQ(r.options.cluster.workers, (std::vector<std::string>{"10.0.0.1:8001", "host-b:9000"}));
}

TEST(cluster_options, worker_takes_its_cluster_port) {
  auto r = parse({"serve", "--role", "worker", "--cluster-port", "0"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_EQ(r.options.cluster.role, "worker");
  EXPECT_EQ(r.options.cluster.cluster_port, 0);
  EXPECT_EQ(parse({"serve"}).options.cluster.role, "standalone");  // the default changes nothing
}

TEST(cluster_options, a_router_without_workers_is_a_usage_error) {
  auto r = parse({"serve", "--role", "router"});
  EXPECT_TRUE(r.command.empty());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--workers"), std::string::npos) << r.output;
  auto w = parse({"serve", "--workers", "h:1"});  // workers only make sense on a router
  EXPECT_EQ(w.exit_code, 2);
  EXPECT_NE(w.output.find("--role router"), std::string::npos) << w.output;
  auto j = parse({"serve", "--role", "router", "--join-port", "0"});  // joining workers only: fine
  EXPECT_EQ(j.command, "serve") << j.output;
  EXPECT_EQ(*j.options.cluster.join_port, 0);
  auto wj = parse({"serve", "--role", "worker", "--join", "router:9000"});
  EXPECT_EQ(wj.options.cluster.join, "router:9000") << wj.output;
  EXPECT_EQ(parse({"serve", "--join", "router:9000"}).exit_code, 2);  // not a worker
  EXPECT_EQ(parse({"serve", "--role", "worker", "--join", "router"}).exit_code, 2);
}

TEST(cluster_options, bad_roles_and_addresses_are_named) {
  auto role = parse({"serve", "--role", "boss"});
  EXPECT_EQ(role.exit_code, 2);
  EXPECT_NE(role.output.find("standalone|worker|router"), std::string::npos) << role.output;
  for (const char* bad : {"hostonly", "h:0", "h:70000", "h:x"}) {
    auto r = parse({"serve", "--role", "router", "--workers", bad});
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.output.find("host:port"), std::string::npos) << r.output;
  }
}

TEST(cluster_options, config_file_lists_workers) {
  troupe_options o;
  auto st = apply_config_json(R"({"role": "router", "workers": ["a:1", "b:2"]})", "c.json", o);
  ASSERT_TRUE(st.ok()) << st.err().message;
  EXPECT_EQ(o.cluster.workers, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_FALSE(apply_config_json(R"({"workers": [1]})", "c.json", o).ok());
}

}  // namespace
}  // namespace troupe
