// Boolean options are flags on the command line (`--x`, `--x=false`, `--x false`, `--no-x`) and take
// true/false in a config file; a bare flag never swallows the option after it.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "config/cli.h"
#include "config/option_table.h"
#include "support/cli_parse.h"

namespace troupe {
namespace {

using testing::parse;

TEST(bool_flags, a_bare_flag_is_true) {
  auto r = parse({"serve", "--enforce-eager", "--tp-collectives"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_TRUE(r.options.engine.enforce_eager);
  EXPECT_TRUE(r.options.engine.tp_collectives);
  r = parse({"generate", "--prompt", "x", "--ignore-eos"});
  ASSERT_EQ(r.command, "generate") << r.output;
  EXPECT_TRUE(r.generate.sampling.ignore_eos);
}

TEST(bool_flags, equals_and_separate_words_set_either_value) {
  for (const char* word : {"true", "1", "yes", "on"}) {
    auto r = parse({"serve", std::string("--enforce-eager=") + word});
    ASSERT_EQ(r.command, "serve") << word << ": " << r.output;
    EXPECT_TRUE(r.options.engine.enforce_eager) << word;
    r = parse({"serve", "--enforce-eager", word});
    ASSERT_EQ(r.command, "serve") << word << ": " << r.output;
    EXPECT_TRUE(r.options.engine.enforce_eager) << word;
  }
  for (const char* word : {"false", "0", "no", "off"}) {
    auto r = parse({"serve", std::string("--enable-prefix-caching=") + word});
    ASSERT_EQ(r.command, "serve") << word << ": " << r.output;
    EXPECT_FALSE(r.options.engine.enable_prefix_caching) << word;
    r = parse({"serve", "--enable-prefix-caching", word});
    ASSERT_EQ(r.command, "serve") << word << ": " << r.output;
    EXPECT_FALSE(r.options.engine.enable_prefix_caching) << word;
  }
  auto r = parse({"generate", "--prompt", "x", "--ignore-eos", "false"});
  ASSERT_EQ(r.command, "generate") << r.output;
  EXPECT_FALSE(r.generate.sampling.ignore_eos);
}

TEST(bool_flags, no_prefix_turns_an_option_off) {
  auto r = parse({"serve", "--no-enable-prefix-caching", "--no-cluster-prefix-routing"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_FALSE(r.options.engine.enable_prefix_caching);
  EXPECT_FALSE(r.options.cluster.prefix_routing);
  r = parse({"generate", "--prompt", "x", "--no-ignore-eos"});
  ASSERT_EQ(r.command, "generate") << r.output;
  EXPECT_FALSE(r.generate.sampling.ignore_eos);
  r = parse({"serve", "--no-enforce-eager=false"});  // not not: on
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_TRUE(r.options.engine.enforce_eager);
}

// --mmap (weights as views into the mapped file) is off by default (copies on huge pages decode
// faster, docs/memory.md); --mmap alone turns it on, --no-mmap off.
TEST(bool_flags, mmap_is_off_by_default_and_the_flag_turns_it_on) {
  auto r = parse({"serve"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_FALSE(r.options.engine.model.mmap);
  r = parse({"serve", "--no-mmap"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_FALSE(r.options.engine.model.mmap);
  r = parse({"serve", "--mmap"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_TRUE(r.options.engine.model.mmap);
}

TEST(bool_flags, a_bare_flag_does_not_swallow_the_next_option) {
  auto r = parse({"generate", "--ignore-eos", "--prompt", "hello", "--enforce-eager", "--max-tokens", "3", "--json"});
  ASSERT_EQ(r.command, "generate") << r.output;
  EXPECT_TRUE(r.generate.sampling.ignore_eos);
  EXPECT_EQ(r.generate.prompt, "hello");
  EXPECT_TRUE(r.options.engine.enforce_eager);
  EXPECT_EQ(r.generate.sampling.max_tokens, 3);
  EXPECT_TRUE(r.generate.json);
  r = parse({"serve", "--enforce-eager", "--port=0"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_TRUE(r.options.engine.enforce_eager);
  EXPECT_EQ(r.options.server.port, 0);
}

TEST(bool_flags, every_boolean_of_the_table_is_a_flag) {
  int booleans = 0;
  for (const auto& def : option_table()) {
    if (def.value.kind != value_kind::boolean) continue;
    ++booleans;
    auto on = parse({"serve", "--" + def.name});
    EXPECT_EQ(on.command, "serve") << def.name << ": " << on.output;
    auto off = parse({"serve", "--no-" + def.name});
    EXPECT_EQ(off.command, "serve") << def.name << ": " << off.output;
  }
  EXPECT_GE(booleans, 4);  // tp-collectives, enforce-eager, enable-prefix-caching, cluster-prefix-routing
}

TEST(bool_flags, a_word_that_is_not_a_boolean_is_a_clear_error) {
  for (auto args : std::vector<std::vector<std::string>>{{"serve", "--enforce-eager", "maybe"},
                                                         {"serve", "--enforce-eager=maybe"},
                                                         {"serve", "--no-enforce-eager=maybe"},
                                                         {"generate", "--prompt", "x", "--ignore-eos", "sometimes"}}) {
    auto r = parse(args);
    EXPECT_TRUE(r.command.empty()) << args.back();
    EXPECT_EQ(r.exit_code, 2) << args.back();
    EXPECT_NE(r.output.find("expected true or false"), std::string::npos) << r.output;
  }
  auto r = parse({"serve", "--enforce-eager", "--no-such-flag"});  // the unknown option is reported, not eaten
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--no-such-flag"), std::string::npos) << r.output;
}

TEST(bool_flags, a_config_file_takes_json_booleans_and_words) {
  troupe_options o;
  ASSERT_TRUE(apply_config_json(R"({"enforce_eager": true, "tp-collectives": "yes", "enable_prefix_caching": false})",
                                "c.json", o)
                  .ok());
  EXPECT_TRUE(o.engine.enforce_eager);
  EXPECT_TRUE(o.engine.tp_collectives);
  EXPECT_FALSE(o.engine.enable_prefix_caching);
  const status st = apply_config_json(R"({"enforce_eager": "maybe"})", "c.json", o);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("expected true or false"), std::string::npos) << st.err().message;
  // The command line's bare flag overrides the file.
  const std::string path = ::testing::TempDir() + "troupe_bool_flags.json";
  std::ofstream(path) << R"({"enable_prefix_caching": false, "enforce_eager": true})";
  auto r = parse({"serve", "--config", path, "--enable-prefix-caching", "--no-enforce-eager"});
  std::remove(path.c_str());
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_TRUE(r.options.engine.enable_prefix_caching);
  EXPECT_FALSE(r.options.engine.enforce_eager);
}

}  // namespace
}  // namespace troupe
