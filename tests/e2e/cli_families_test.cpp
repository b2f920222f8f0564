// The `troupe` binary on the newer families' fixtures (tests/data/fixtures, made by
// tools/make_tiny_fixtures.py): `plan` names the architecture and its traits, `generate` through
// the whole engine (loader, fused-weight split, scheduler, executor) continues a prompt as
// transformers did, and an unknown architecture is refused with the supported list.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace {

struct run_result {
  int code = -1;
  std::string out;  // stdout and stderr together
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

std::string fixture(const std::string& name) { return std::string(TROUPE_TEST_DATA_DIR) + "/fixtures/" + name; }

nlohmann::json reference_prompt(const std::string& folder, size_t i) {
  std::ifstream in(fixture(folder) + "/reference.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str())["prompts"][i];
}

TEST(cli_families, plan_names_the_architecture_and_its_traits) {
  struct expect_case {
    const char* model;
    std::vector<const char*> words;
  };
  for (const auto& c : {expect_case{"tiny-qwen3", {"qwen3", "head_dim 32", "q/k norm"}},
                        expect_case{"tiny-phi3", {"phi3", "head_dim 16", "rope longrope", "sliding window 48"}},
                        expect_case{"tiny-llama3-bf16/model.gguf", {"llama", "rope factors"}}}) {
    auto r = run("plan --model " + fixture(c.model) + " --device cpu --device-memory 1GiB --log-level warn");
    ASSERT_EQ(r.code, 0) << r.out;
    for (const char* w : c.words) EXPECT_NE(r.out.find(w), std::string::npos) << c.model << ": " << w << "\n" << r.out;
  }
}

TEST(cli_families, generate_continues_like_transformers) {
  for (const char* model : {"tiny-qwen3", "tiny-qwen3-bf16/model.gguf", "tiny-phi3", "tiny-phi3-bf16/model.gguf",
                            "tiny-llama3-bf16/model.gguf"}) {
    SCOPED_TRACE(model);
    const std::string folder = std::string(model).substr(0, std::string(model).find('/'));
    const auto p = reference_prompt(folder, 1);
    std::string ids;
    for (const auto& id : p["input_ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(id.get<int>());
    auto r = run("generate --model " + fixture(model) + " --prompt-ids " + ids +
                 " --max-tokens 8 --temperature 0 --ignore-eos --json --kv-cache-dtype float32 "
                 "--cache-max-entry-count 32 --cache-block-seq-len 16 --max-prefill-token-num 64 --session-len 128 "
                 "--log-level warn");
    ASSERT_EQ(r.code, 0) << r.out;
    auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
    std::vector<int> want(p["greedy_continuation"].begin(), p["greedy_continuation"].begin() + 8);
    EXPECT_EQ(j["token_ids"].get<std::vector<int>>(), want) << r.out;
  }
}

TEST(cli_families, unknown_architecture_is_refused_with_the_supported_list) {
  const auto dir = std::filesystem::temp_directory_path() / ("troupe-neox-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"model_type":"gpt_neox","vocab_size":10,"hidden_size":8})";
  auto r = run("plan --model " + dir.string() + " --device cpu --device-memory 1GiB");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(r.code, 1) << r.out;
  for (const char* a : {"gpt_neox", "llama", "qwen2", "qwen3", "mistral", "phi3"})
    EXPECT_NE(r.out.find(a), std::string::npos) << a << "\n" << r.out;
}

}  // namespace
