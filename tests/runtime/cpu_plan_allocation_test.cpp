// The memory plan against what the CPU backend allocates: for every shared fixture, the Gemma 3
// fixtures, the default model, its F16 conversion and the Gemma 3 270M test model, the plan's KV dtype, block bytes, KV
// bytes and weight bytes equal the cpu_model built from that plan (--kv-cache-dtype auto: float16
// on the CPU; explicit float32 too), with weights mapped from the file (--mmap) and copied (--no-mmap).
// GGUF block formats and bf16 are counted as held, not as float32; mapped bytes count as held.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "config/paths.h"
#include "runtime/cpu_model.h"
#include "runtime/model_plan.h"
#include "runtime/model_weights.h"

namespace troupe {
namespace {

void check_plan_equals_allocation(const std::string& path,
                                  std::initializer_list<const char*> kv_dtypes = {"auto", "float32", "float16"}) {
  SCOPED_TRACE(path);
  auto cfg = read_model_config(path);
  ASSERT_TRUE(cfg.ok()) << cfg.err().message;
  for (const char* kv : kv_dtypes) for (bool mmap : {true, false}) {  // every KV dtype, mapped and copied
    SCOPED_TRACE(kv);
    SCOPED_TRACE(mmap ? "--mmap" : "--no-mmap");
    engine_options o;
    o.model.mmap = mmap;
    o.device = "cpu";
    o.model.kv_cache_dtype = kv;
    o.cache_max_entry_count = 12;  // blocks
    o.session_len = 64;
    o.device_memory = 64ull << 30;
    o.model.model = path;
    auto plan = plan_for_model(*cfg, o, simulated_or_host_devices(o));
    ASSERT_TRUE(plan.ok()) << plan.err().message;
    EXPECT_EQ(plan->kv_dtype, std::string(kv) == "auto" ? "float16" : kv);
    auto w = load_model_weights(*cfg, path, load_format::weights, weight_load_options{.mmap = mmap});
    ASSERT_TRUE(w.ok()) << w.err().message;
    // The plan says which share of the weights is mapped from the file and which is copied.
    auto src = open_weights(path);
    ASSERT_TRUE(src.ok());
    auto held = plan_held_weights(*cfg, **src, weight_load_options{.mmap = mmap});
    ASSERT_TRUE(held.ok());
    EXPECT_EQ(held->mapped_bytes, static_cast<uint64_t>(w->mapped_bytes()));
    EXPECT_NE(plan->weights_rule.find(format_bytes(held->mapped_bytes) + " mapped from the file"), std::string::npos)
        << plan->weights_rule;
    cpu_model_options co;
    co.num_kv_blocks = plan->num_blocks;
    co.block_seq_len = plan->block_seq_len;
    co.num_threads = 1;
    co.kv_dtype = plan->kv_dtype == "float16" ? weight_dtype::f16 : weight_dtype::f32;
    auto m = cpu_model::create(*cfg, std::move(*w), co);
    ASSERT_TRUE(m.ok()) << m.err().message;
    EXPECT_EQ(plan->block_bytes, static_cast<uint64_t>((*m)->block_bytes()));
    EXPECT_EQ(plan->ranks[0].kv_bytes, (*m)->memory().kv_bytes);
    EXPECT_EQ(plan->ranks[0].weights_bytes, (*m)->memory().weights_bytes);
  }
}

// Every fixture folder there is (a new one is covered without editing this test).
TEST(cpu_plan_allocation, fixtures_kv_plan_equals_allocation) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(TROUPE_FIXTURES_DIR))
    if (std::filesystem::exists(e.path() / "config.json")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const char* known : {"tiny-llama", "tiny-llama-bf16", "tiny-qwen2", "tiny-qwen2-bf16"})
    EXPECT_NE(std::find(names.begin(), names.end(), known), names.end()) << known << " missing in " << TROUPE_FIXTURES_DIR;
  for (const auto& name : names) check_plan_equals_allocation(std::string(TROUPE_FIXTURES_DIR) + "/" + name);
}

TEST(cpu_plan_allocation, gemma3_fixtures_plan_equals_allocation) {
  for (const char* name : {"tiny-gemma3", "tiny-gemma3-bf16"})
    check_plan_equals_allocation(std::string(TROUPE_TEST_DATA_DIR) + "/fixtures/" + name);
}

TEST(cpu_plan_allocation, gemma3_270m_plan_equals_allocation) {
  const std::string path = (std::filesystem::path(default_model_path()).parent_path() / "gemma-3-270m-q4_k_m.gguf").string();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "Gemma 3 270M not installed at " << path << " (tools/setup.sh --test)";
  check_plan_equals_allocation(path);
}

// The default model's Q4_1 matrices are held as blocks (~100 MB), not as float32 (~540 MB).
TEST(cpu_plan_allocation, default_model_plan_counts_quantized_weights_as_held) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not installed at " << path;
  auto cfg = read_model_config(path);
  ASSERT_TRUE(cfg.ok()) << cfg.err().message;
  engine_options o;
  o.device = "cpu";
  o.cache_max_entry_count = 12;
  o.session_len = 64;
  o.device_memory = 64ull << 30;
  auto plan = plan_for_model(*cfg, o, simulated_or_host_devices(o));
  ASSERT_TRUE(plan.ok()) << plan.err().message;
  EXPECT_LT(plan->ranks[0].weights_bytes, 150ull << 20);
  EXPECT_NE(plan->weights_rule.find("Q4_1"), std::string::npos) << plan->weights_rule;
}

TEST(cpu_plan_allocation, default_model_kv_plan_equals_allocation) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not installed at " << path;
  check_plan_equals_allocation(path);
}

// The default model's F16 conversion (bench/gguf_to_f16.py writes it beside the model): F16 matrices
// held as 16-bit (the KV side is the Q4_1 file's: one KV dtype keeps the 270 MB loads to one).
TEST(cpu_plan_allocation, default_model_f16_conversion_plan_equals_allocation) {
  const auto q = std::filesystem::path(default_model_path());
  const auto path = (q.parent_path() / (q.stem().string().substr(0, q.stem().string().rfind('.')) + ".F16.gguf")).string();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no F16 conversion at " << path << " (bench/gguf_to_f16.py)";
  check_plan_equals_allocation(path, {"float16"});
}

}  // namespace
}  // namespace troupe
