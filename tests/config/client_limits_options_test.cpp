// The options that bound what one client can make the server hold: --max-json-depth,
// --max-queued-output-bytes and --write-timeout (defaults, values landing, range errors).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/cli_parse.h"

namespace troupe {
namespace {

using testing::parse;

TEST(client_limits, defaults_bound_every_client) {
  server_options s;
  EXPECT_EQ(s.max_json_depth, 64);
  EXPECT_EQ(s.max_queued_output_bytes, 8ull << 20);
  EXPECT_DOUBLE_EQ(s.write_timeout_s, 30.0);
}

TEST(client_limits, values_land_in_the_struct) {
  auto r = parse({"serve", "--max-json-depth", "16", "--max-queued-output-bytes", "256KiB", "--write-timeout", "2.5"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_EQ(r.options.server.max_json_depth, 16);
  EXPECT_EQ(r.options.server.max_queued_output_bytes, 256ull << 10);
  EXPECT_DOUBLE_EQ(r.options.server.write_timeout_s, 2.5);
}

TEST(client_limits, out_of_range_values_are_usage_errors) {
  for (auto args : std::vector<std::vector<std::string>>{{"serve", "--max-json-depth", "0"},
                                                         {"serve", "--max-json-depth", "100000"},
                                                         {"serve", "--max-json-depth", "deep"},
                                                         {"serve", "--max-queued-output-bytes", "100"},
                                                         {"serve", "--max-queued-output-bytes", "lots"},
                                                         {"serve", "--write-timeout", "0"},
                                                         {"serve", "--write-timeout", "-1"}}) {
    auto r = parse(args);
    EXPECT_TRUE(r.command.empty()) << args[1] << " " << args[2];
    EXPECT_NE(r.exit_code, 0) << args[1];
    EXPECT_NE(r.output.find(args[1]), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace troupe
