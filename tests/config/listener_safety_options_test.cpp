// The listener's browser-safety and flow-control options (--allowed-hosts, --allowed-origins,
// --max-queued-output-bytes, --write-timeout): values land in server_options, bad values are usage errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/cli_parse.h"

namespace troupe {
namespace {

using testing::parse;

TEST(cli, listener_safety_options_land_in_the_struct) {
  auto r = parse({"serve", "--allowed-hosts", "gpu-box.lan,api.example", "--allowed-origins", "https://app.example",
                  "--max-queued-output-bytes", "1MiB", "--write-timeout", "2.5"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_EQ(r.options.server.allowed_hosts, (std::vector<std::string>{"gpu-box.lan", "api.example"}));
  EXPECT_EQ(r.options.server.allowed_origins, (std::vector<std::string>{"https://app.example"}));
  EXPECT_EQ(r.options.server.max_queued_output_bytes, 1ull << 20);
  EXPECT_DOUBLE_EQ(r.options.server.write_timeout_s, 2.5);
  auto d = parse({"serve"});
  ASSERT_EQ(d.command, "serve") << d.output;
  EXPECT_TRUE(d.options.server.allowed_hosts.empty());
  EXPECT_TRUE(d.options.server.allowed_origins.empty());
  EXPECT_EQ(d.options.server.max_queued_output_bytes, 8ull << 20);
  EXPECT_DOUBLE_EQ(d.options.server.write_timeout_s, 30.0);
}

TEST(cli, listener_safety_option_values_are_checked) {
  for (auto args : std::vector<std::vector<std::string>>{{"serve", "--max-queued-output-bytes", "100"},
                                                         {"serve", "--max-queued-output-bytes", "lots"},
                                                         {"serve", "--write-timeout", "0"},
                                                         {"serve", "--write-timeout", "soon"}}) {
    auto r = parse(args);
    EXPECT_TRUE(r.command.empty()) << args[1] << " " << args[2];
    EXPECT_NE(r.exit_code, 0) << args[1];
    EXPECT_NE(r.output.find(args[1].substr(2)), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace troupe
