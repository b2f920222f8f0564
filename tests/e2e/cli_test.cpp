// The `troupe` binary as a user runs it: plan (table and JSON), generate (text, ids, JSON, chat),
// and clear failures with a non-zero exit code.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace {

struct run_result {
  int code = -1;
  std::string out;
};

run_result run(const std::string& args) {
  const std::string cmd = std::string(TROUPE_BINARY) + " " + args + " 2>&1";
  run_result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string llama3() { return std::string(TROUPE_TEST_DATA_DIR) + "/llama3-8b"; }

TEST(cli_plan, llama3_8b_on_an_80gib_gpu_checks_by_hand) {
  auto r = run("plan --model " + llama3() + " --device cuda --device-memory 80GiB --session-len 8192 "
               "--cache-max-entry-count 0.5 --json --log-level warn");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["block_bytes"], 8388608);  // 64 tokens x 32 layers x 8 KV heads x 128 x 2 x 2 bytes
  EXPECT_EQ(j["ranks"][0]["weights_bytes"], 16060522496ull);
  const uint64_t avail = j["ranks"][0]["available_for_kv_bytes"];
  EXPECT_EQ(avail, 80ull * (1ull << 30) - 16060522496ull - j["ranks"][0]["reserve_bytes"].get<uint64_t>());
  EXPECT_EQ(j["num_blocks"], (avail / 2) / 8388608);
  EXPECT_EQ(j["token_capacity"], j["num_blocks"].get<int64_t>() * 64);
  EXPECT_EQ(j["max_full_sessions"], j["num_blocks"].get<int64_t>() / 128);
}

TEST(cli_plan, tp2_halves_the_block_and_prints_two_ranks) {
  auto r = run("plan --model " + llama3() + " --device cuda --device-memory 80GiB --tp 2 --log-level warn");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("4.00 MiB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("     1 |"), std::string::npos) << r.out;  // the rank-1 row
}

TEST(cli_plan, refuses_what_does_not_fit_with_the_numbers) {
  auto r = run("plan --model " + llama3() + " --device cuda --device-memory 12GiB");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("weights need 14.96 GiB"), std::string::npos) << r.out;
  r = run("plan --model " + llama3() + " --device cuda --device-memory 80GiB --tp 3");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--tp 3"), std::string::npos) << r.out;
  r = run("generate --model " + std::string(TROUPE_FIXTURES_DIR) +
          "/tiny-llama --prompt-ids 1,2 --cache-max-entry-count 32 --cache-block-seq-len 16 --max-prefill-token-num 64");
  EXPECT_EQ(r.code, 1);  // session_len 1024 needs 64 blocks of 16
  EXPECT_NE(r.out.find("not even one session_len sequence fits"), std::string::npos) << r.out;
  r = run("plan --model /nonexistent");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no such file"), std::string::npos) << r.out;
}

TEST(cli_generate, prompt_ids_on_a_fixture_match_transformers) {
  // tiny-llama has no tokenizer: ids in, ids out; greedy continuation from reference.json.
  auto r = run("generate --model " + std::string(TROUPE_FIXTURES_DIR) +
               "/tiny-llama --prompt-ids 337,403,132,143,387,91,110 --max-tokens 8 --temperature 0 "
               "--ignore-eos true --json --cache-max-entry-count 32 --cache-block-seq-len 16 "
               "--max-prefill-token-num 64 --session-len 256 --log-level warn");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["token_ids"], (std::vector<int>{359, 319, 464, 34, 366, 319, 51, 174}));
}

TEST(cli_generate, boolean_options_are_bare_flags) {
  // The continuation above again, with --ignore-eos bare (it used to demand "true") and a --no- flag.
  auto r = run("generate --model " + std::string(TROUPE_FIXTURES_DIR) +
               "/tiny-llama --prompt-ids 337,403,132,143,387,91,110 --max-tokens 8 --temperature 0 "
               "--ignore-eos --json --no-enable-prefix-caching --cache-max-entry-count 32 --cache-block-seq-len 16 "
               "--max-prefill-token-num 64 --session-len 256 --log-level warn");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["token_ids"], (std::vector<int>{359, 319, 464, 34, 366, 319, 51, 174}));
  r = run("generate --prompt-ids 1,2 --ignore-eos maybe");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("expected true or false"), std::string::npos) << r.out;
}

TEST(cli_plan, the_cpu_default_kv_cache_is_bounded_and_named) {
  // Llama-3-8B on an 80 GiB host: 256 full 8192-token sequences would need 512 GiB, so the 4 GiB cap.
  auto r = run("plan --model " + llama3() + " --device-memory 80GiB --session-len 8192 --json --log-level warn");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kv_rule"].get<std::string>().rfind("cpu default: the 4.00 GiB cap", 0), 0u) << j["kv_rule"];
  EXPECT_EQ(j["ranks"][0]["kv_bytes"], (4ull << 30) / j["block_bytes"].get<uint64_t>() * j["block_bytes"].get<uint64_t>());
  r = run("plan --model " + llama3() + " --device-memory 80GiB --session-len 8192 --cache-max-entry-count 0.8 --json --log-level warn");
  ASSERT_EQ(r.code, 0) << r.out;
  j = nlohmann::json::parse(r.out);  // asked for: the ratio, most of the host
  EXPECT_EQ(j["kv_rule"], "ratio 0.80 of the memory left after weights and reserve");
  EXPECT_GT(j["ranks"][0]["kv_bytes"].get<uint64_t>(), 30ull << 30);  // 0.8 of the ~49 GiB left after float32 weights
}

TEST(cli_generate, the_default_model_answers_a_chat_prompt) {
  auto r = run("generate --chat --prompt 'What is the capital of France?' --max-tokens 24 --temperature 0 "
               "--cache-max-entry-count 64 --session-len 2048 --log-level warn");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Paris"), std::string::npos) << r.out;
}

TEST(cli_generate, bad_input_exits_non_zero_with_a_message) {
  auto r = run("generate --model " + std::string(TROUPE_FIXTURES_DIR) + "/tiny-llama --prompt hello");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("no tokenizer"), std::string::npos) << r.out;
  r = run("generate --prompt-ids 1,2 --temperature -3");
  EXPECT_EQ(r.code, 2);
  r = run("generate --model " + std::string(TROUPE_FIXTURES_DIR) +
          "/tiny-llama --prompt-ids 1,99999 --cache-max-entry-count 32 --cache-block-seq-len 16 "
          "--max-prefill-token-num 64 --session-len 256");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("outside the vocabulary"), std::string::npos) << r.out;
}

}  // namespace
