// Test support: loads a fixture model (../shared/fixtures) into a CPU backend with a KV pool of a
// given size, and reads its reference.json. Header-only so each test folder can use it.
#pragma once

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/cpu_model.h"
#include "runtime/model_config.h"
#include "runtime/model_weights.h"
#include "runtime/weight_source.h"

namespace troupe::testing {

inline std::string fixture_dir(const std::string& name) { return std::string(TROUPE_FIXTURES_DIR) + "/" + name; }

struct fixture_prompt {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> greedy;  // 24-token greedy continuation from transformers
};

inline std::vector<fixture_prompt> fixture_prompts(const std::string& name) {
  std::ifstream in(fixture_dir(name) + "/reference.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str());
  std::vector<fixture_prompt> out;
  for (const auto& p : j["prompts"])
    out.push_back({p["input_ids"].get<std::vector<int32_t>>(), p["greedy_continuation"].get<std::vector<int32_t>>()});
  return out;
}

inline std::shared_ptr<cpu_model> fixture_backend(const std::string& name, int64_t num_blocks, int64_t block_seq_len) {
  auto cfg = read_model_config(fixture_dir(name));
  EXPECT_TRUE(cfg.ok()) << cfg.err().message;
  auto src = open_weights(fixture_dir(name));
  EXPECT_TRUE(src.ok()) << src.err().message;
  auto w = load_model_weights(*cfg, **src);
  EXPECT_TRUE(w.ok()) << w.err().message;
  cpu_model_options o;
  o.num_kv_blocks = num_blocks;
  o.block_seq_len = block_seq_len;
  o.num_threads = 2;
  auto m = cpu_model::create(*cfg, std::move(*w), o);
  EXPECT_TRUE(m.ok()) << m.err().message;
  return std::shared_ptr<cpu_model>(std::move(*m));
}

}  // namespace troupe::testing
