// The options that bound what one client can make the server hold: --max-json-depth,
// --max-queued-output-bytes and --write-timeout (defaults, values landing, range errors).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/option_table.h"
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

// Every enumeration (--dtype, --kv-cache-dtype, --device, --role, --log-level, ...) refuses a word
// outside its list with a usage error that names the option and the words it takes.
TEST(choice_options, a_word_outside_the_list_is_a_usage_error_naming_the_choices) {
  int checked = 0;
  for (const option_def& def : option_table()) {
    if (def.value.kind != value_kind::choice) continue;
    ++checked;
    auto r = parse({"serve", "--" + def.name, "no-such-word"});
    EXPECT_TRUE(r.command.empty()) << def.name;
    EXPECT_NE(r.exit_code, 0) << def.name;
    EXPECT_NE(r.output.find("--" + def.name), std::string::npos) << r.output;
    for (const std::string& w : def.value.choices) EXPECT_NE(r.output.find(w), std::string::npos) << def.name << ": " << w;
  }
  EXPECT_GE(checked, 5);
}

}  // namespace
}  // namespace troupe
