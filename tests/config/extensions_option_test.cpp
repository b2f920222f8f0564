// The `extensions` option: a comma-separated flag, or a list (or string) in the JSON config file.
#include <gtest/gtest.h>

#include "config/cli.h"

namespace troupe {
namespace {

using names = std::vector<std::string>;

TEST(extensions_option, flag_is_comma_separated_in_order) {
  const char* argv[] = {"troupe", "serve", "--extensions", "rate_limiter,,audit_log"};
  cli_result cli = parse_command_line(4, argv);
  ASSERT_EQ(cli.command, "serve") << cli.output;
  EXPECT_EQ(cli.options.server.extensions, (names{"rate_limiter", "audit_log"}));
}

TEST(extensions_option, config_file_takes_a_list_or_a_string) {
  troupe_options opts;
  ASSERT_TRUE(apply_config_json(R"({"extensions": ["echo_stats", "audit_log"]})", "test.json", opts).ok());
  EXPECT_EQ(opts.server.extensions, (names{"echo_stats", "audit_log"}));
  ASSERT_TRUE(apply_config_json(R"({"extensions": "rate_limiter"})", "test.json", opts).ok());
  EXPECT_EQ(opts.server.extensions, (names{"rate_limiter"}));
  EXPECT_FALSE(apply_config_json(R"({"extensions": [1, 2]})", "test.json", opts).ok());
}

TEST(extensions_option, default_is_none) {
  EXPECT_TRUE(troupe_options{}.server.extensions.empty());
}

}  // namespace
}  // namespace troupe
