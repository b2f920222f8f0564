// The command line and config file: values land in the options, bad values give clear errors,
// the command line overrides the config file.
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

TEST(cli, serve_options_land_in_the_struct) {
  auto r = parse({"serve", "--model", "/m.gguf", "--max-batch-size", "8", "--cache-max-entry-count", "0.5",
                  "--kv-cache-memory", "2GiB", "--port", "0", "--api-key", "k", "--queue-timeout", "1.5"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_EQ(r.options.engine.model.model, "/m.gguf");
  EXPECT_EQ(r.options.engine.max_batch_size, 8);
  ASSERT_TRUE(r.options.engine.cache_max_entry_count.has_value());
  EXPECT_DOUBLE_EQ(*r.options.engine.cache_max_entry_count, 0.5);
  EXPECT_EQ(*r.options.engine.kv_cache_memory, 2ull << 30);
  EXPECT_EQ(r.options.server.port, 0);
  EXPECT_EQ(r.options.server.api_key, "k");
  EXPECT_DOUBLE_EQ(r.options.engine.queue_timeout_s, 1.5);
  EXPECT_EQ(r.options.server.host, "127.0.0.1");  // default binds loopback only
}

TEST(cli, out_of_range_values_are_usage_errors) {
  for (auto args : std::vector<std::vector<std::string>>{{"serve", "--cache-max-entry-count", "0"},
                                                         {"serve", "--cache-max-entry-count", "-1"},
                                                         {"serve", "--cache-max-entry-count", "2.5"},
                                                         {"serve", "--max-batch-size", "0"},
                                                         {"serve", "--max-batch-size", "12abc"},
                                                         {"serve", "--port", "70000"},
                                                         {"serve", "--device", "tpu"},
                                                         {"serve", "--kv-cache-memory", "lots"},
                                                         {"generate", "--prompt", "x", "--top-p", "0"},
                                                         {"generate", "--prompt", "x", "--temperature", "-1"},
                                                         {"generate", "--prompt-ids", "1,x,3"},
                                                         {"serve", "--enforce-eager", "maybe"},
                                                         {"serve", "--tp-collectives", "sometimes"},
                                                         {"serve", "--fault-inject", "rank=99"},
                                                         {"serve", "--fault-inject", "fail_step=2,rank=x"},
                                                         {"serve", "--no-such-flag"}}) {
    auto r = parse(args);
    EXPECT_TRUE(r.command.empty()) << args[1];
    EXPECT_EQ(r.exit_code != 0, true) << args[1];
    EXPECT_FALSE(r.output.empty());
  }
}

TEST(cli, help_explains_the_three_limits) {
  auto r = parse({"serve", "--help"});
  EXPECT_TRUE(r.command.empty());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--max-concurrent-requests"), std::string::npos);
  EXPECT_NE(r.output.find("requests in flight"), std::string::npos);
  EXPECT_NE(r.output.find("sequences computed in one forward step"), std::string::npos);
  EXPECT_NE(r.output.find("tokens resident"), std::string::npos);
}

TEST(cli, generate_takes_prompt_ids_and_sampling) {
  auto r = parse({"generate", "--prompt-ids", "1,2,3", "--temperature", "0", "--max-tokens", "5", "--json",
                  "--stop", "a", "--stop", "b", "--seed", "7"});
  ASSERT_EQ(r.command, "generate") << r.output;
  EXPECT_EQ(r.generate.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.generate.sampling.temperature, 0.0f);
  EXPECT_EQ(r.generate.sampling.max_tokens, 5);
  EXPECT_EQ(r.generate.sampling.stop.size(), 2u);
  EXPECT_EQ(*r.generate.sampling.seed, 7u);
  EXPECT_TRUE(r.generate.json);
}

TEST(cli, generate_without_prompt_is_an_error) {
  auto r = parse({"generate"});
  EXPECT_TRUE(r.command.empty());
  EXPECT_EQ(r.exit_code, 2);
}

TEST(cli, command_line_overrides_config_file) {
  const std::string path = ::testing::TempDir() + "troupe_cfg.json";
  std::ofstream(path) << R"({"max_batch_size": 4, "max-concurrent-requests": 7, "host": "0.0.0.0", "enable_prefix_caching": false})";
  auto r = parse({"serve", "--config", path, "--max-batch-size", "9"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_EQ(r.options.engine.max_batch_size, 9);           // flag wins
  EXPECT_EQ(r.options.engine.max_concurrent_requests, 7);  // from the file
  EXPECT_EQ(r.options.server.host, "0.0.0.0");
  EXPECT_FALSE(r.options.engine.enable_prefix_caching);
  std::remove(path.c_str());
}

TEST(config_file, unknown_keys_and_bad_values_are_named) {
  troupe_options o;
  auto st = apply_config_json(R"({"max_batch_sise": 4})", "c.json", o);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("max_batch_sise"), std::string::npos);
  st = apply_config_json(R"({"max_batch_size": "many"})", "c.json", o);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("max-batch-size"), std::string::npos);
  st = apply_config_json(R"({"tp": [1, 2]})", "c.json", o);
  EXPECT_FALSE(st.ok());
  st = apply_config_json("{not json", "c.json", o);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("invalid JSON"), std::string::npos);
  st = apply_config_json("[1,2]", "c.json", o);
  EXPECT_FALSE(st.ok());
}

TEST(config_file, missing_file_is_an_error) {
  auto r = parse({"serve", "--config", "/nonexistent/troupe.json"});
  EXPECT_TRUE(r.command.empty());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("cannot open"), std::string::npos);
}

TEST(options, cross_option_validation) {
  troupe_options o;
  o.engine.max_prefill_token_num = 16;
  o.engine.cache_block_seq_len = 64;
  EXPECT_FALSE(validate_options(o).ok());
  troupe_options f;
  f.engine.tp = 2;
  f.engine.fault_inject.rank = 2;  // ranks are 0 and 1
  const status st = validate_options(f);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.err().message.find("--fault-inject rank=2 names no rank of --tp 2"), std::string::npos) << st.err().message;
  f.engine.fault_inject.rank = 1;
  EXPECT_TRUE(validate_options(f).ok());
}

TEST(cli, enforce_eager_takes_a_boolean) {
  auto r = parse({"serve", "--enforce-eager", "true"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_TRUE(r.options.engine.enforce_eager);
  EXPECT_FALSE(parse({"serve"}).options.engine.enforce_eager);
}

TEST(options, reference_lists_every_option) {
  const std::string md = options_markdown();
  for (const auto& d : option_table()) EXPECT_NE(md.find("`--" + d.name + "`"), std::string::npos) << d.name;
}

}  // namespace
}  // namespace troupe
