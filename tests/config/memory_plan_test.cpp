// The memory planner against hand-computed cases (design.md §1).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/memory_plan.h"

namespace troupe {
namespace {

constexpr uint64_t GiB = 1ull << 30;
constexpr uint64_t MiB = 1ull << 20;

plan_model_shape llama3_8b() {
  plan_model_shape m;
  m.vocab_size = 128256;
  m.hidden_size = 4096;
  m.intermediate_size = 14336;
  m.num_layers = 32;
  m.num_heads = 32;
  m.num_kv_heads = 8;
  m.head_dim = 128;
  m.max_position_embeddings = 131072;
  return m;
}

engine_options opts_with(int tp, double ratio) {
  engine_options o;
  o.device = "cuda";
  o.tp = tp;
  o.session_len = 8192;
  o.cache_max_entry_count = ratio;
  return o;
}

TEST(memory_plan, llama3_8b_bf16_weights_are_exact) {
  // 8,030,261,248 parameters x 2 bytes (embedding and LM head untied).
  EXPECT_EQ(weight_bytes_per_rank(llama3_8b(), "bfloat16", 1), 16060522496ull);
}

TEST(memory_plan, weights_shard_over_ranks_with_embeddings_replicated) {
  // Sharded: per layer 218,103,808 of 218,112,000 params (all but the two norms) halve at tp=2.
  const uint64_t tp1 = weight_bytes_per_rank(llama3_8b(), "bfloat16", 1);
  const uint64_t tp2 = weight_bytes_per_rank(llama3_8b(), "bfloat16", 2);
  const uint64_t replicated = 2ull * (2 * 128256ull * 4096 + 4096 + 32 * 2 * 4096);
  EXPECT_EQ(tp2, (tp1 - replicated) / 2 + replicated);
}

TEST(memory_plan, block_of_64_tokens_is_8mib_at_tp1_and_4mib_per_rank_at_tp2) {
  auto p1 = make_memory_plan(llama3_8b(), opts_with(1, 0.5), "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p1.ok()) << p1.err().message;
  EXPECT_EQ(p1->block_bytes, 8 * MiB);
  auto p2 = make_memory_plan(llama3_8b(), opts_with(2, 0.5), "bfloat16", {{80 * GiB, 80 * GiB}, {80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p2.ok()) << p2.err().message;
  EXPECT_EQ(p2->block_bytes, 4 * MiB);
}

TEST(memory_plan, ratio_takes_that_fraction_of_what_remains) {
  auto p = make_memory_plan(llama3_8b(), opts_with(1, 0.5), "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p.ok());
  const auto& r = p->ranks[0];
  EXPECT_EQ(r.available_for_kv, 80 * GiB - r.weights_bytes - r.reserve_bytes);
  EXPECT_EQ(p->num_blocks, static_cast<int64_t>((r.available_for_kv / 2) / (8 * MiB)));
  EXPECT_EQ(r.kv_bytes, static_cast<uint64_t>(p->num_blocks) * 8 * MiB);
  EXPECT_EQ(p->token_capacity, p->num_blocks * 64);
  EXPECT_EQ(p->max_full_sessions, p->num_blocks / (8192 / 64));
  EXPECT_EQ(r.free_after_bytes, 80 * GiB - r.weights_bytes - r.reserve_bytes - r.kv_bytes);
}

TEST(memory_plan, count_above_one_is_a_number_of_blocks) {
  auto p = make_memory_plan(llama3_8b(), opts_with(1, 1000), "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p.ok()) << p.err().message;
  EXPECT_EQ(p->num_blocks, 1000);
  EXPECT_EQ(p->ranks[0].kv_bytes, 1000 * 8 * MiB);
}

TEST(memory_plan, kv_cache_memory_is_an_absolute_size) {
  auto o = opts_with(1, 0.5);
  o.kv_cache_memory = 20 * GiB;
  auto p = make_memory_plan(llama3_8b(), o, "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->num_blocks, 20 * 1024 / 8);  // 2560 blocks of 8 MiB
}

TEST(memory_plan, ranks_use_the_minimum_over_unequal_free_memory) {
  // Rank 1 has 10 GiB less free; both ranks end with rank 1's block count.
  auto p = make_memory_plan(llama3_8b(), opts_with(2, 0.9), "bfloat16", {{80 * GiB, 80 * GiB}, {80 * GiB, 70 * GiB}});
  ASSERT_TRUE(p.ok());
  const auto& r1 = p->ranks[1];
  EXPECT_EQ(p->num_blocks, static_cast<int64_t>(static_cast<uint64_t>(0.9 * r1.available_for_kv) / (4 * MiB)));
  EXPECT_EQ(p->ranks[0].kv_bytes, p->ranks[1].kv_bytes);
  EXPECT_GT(p->ranks[0].free_after_bytes, p->ranks[1].free_after_bytes);
}

TEST(memory_plan, warns_above_095) {
  auto p = make_memory_plan(llama3_8b(), opts_with(1, 0.97), "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->warnings.size(), 1u);
  EXPECT_NE(p->warnings[0].find("0.95"), std::string::npos);
}

TEST(memory_plan, weights_that_do_not_fit_are_an_error_with_numbers) {
  auto p = make_memory_plan(llama3_8b(), opts_with(1, 0.5), "bfloat16", {{16 * GiB, 12 * GiB}});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.err().code, errc::out_of_memory);
  EXPECT_NE(p.err().message.find("14.96 GiB"), std::string::npos) << p.err().message;
  EXPECT_NE(p.err().message.find("--tp"), std::string::npos);
}

TEST(memory_plan, reserve_that_leaves_nothing_names_the_knobs) {
  auto o = opts_with(1, 0.5);
  o.max_prefill_token_num = 1 << 20;
  auto p = make_memory_plan(llama3_8b(), o, "bfloat16", {{24 * GiB, 24 * GiB}});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.err().message.find("--max-prefill-token-num"), std::string::npos) << p.err().message;
}

TEST(memory_plan, one_session_must_fit) {
  // 18 GiB: ~2.5 GiB left after weights and reserve; 1% of it is 3 blocks, session 8192 needs 128.
  auto p = make_memory_plan(llama3_8b(), opts_with(1, 0.01), "bfloat16", {{18 * GiB, 18 * GiB}});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.err().message.find("not even one session_len"), std::string::npos) << p.err().message;
  EXPECT_NE(p.err().message.find("--session-len"), std::string::npos);
}

TEST(memory_plan, block_count_beyond_memory_is_refused) {
  auto p = make_memory_plan(llama3_8b(), opts_with(1, 100000), "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.err().code, errc::out_of_memory);
}

TEST(memory_plan, tp_must_divide_heads) {
  auto p = make_memory_plan(llama3_8b(), opts_with(3, 0.5), "bfloat16", std::vector<device_memory>(3, {80 * GiB, 80 * GiB}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.err().code, errc::invalid_argument);
}

TEST(memory_plan, json_has_the_documented_keys) {
  auto p = make_memory_plan(llama3_8b(), opts_with(2, 0.5), "bfloat16", {{80 * GiB, 80 * GiB}, {80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p.ok());
  auto j = nlohmann::json::parse(memory_plan_json(*p));
  for (const char* k : {"block_bytes", "num_blocks", "token_capacity", "max_full_sessions", "ranks"})
    EXPECT_TRUE(j.contains(k)) << k;
  ASSERT_EQ(j["ranks"].size(), 2u);
  for (const char* k : {"weights_bytes", "reserve_bytes", "kv_bytes", "free_after_bytes"})
    EXPECT_TRUE(j["ranks"][0].contains(k)) << k;
}

TEST(memory_plan, table_names_the_three_limits) {
  auto p = make_memory_plan(llama3_8b(), opts_with(1, 0.5), "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p.ok());
  const std::string t = format_memory_plan(*p);
  EXPECT_NE(t.find("max_concurrent_requests"), std::string::npos);
  EXPECT_NE(t.find("max_batch_size"), std::string::npos);
  EXPECT_NE(t.find("KV capacity"), std::string::npos);
}

TEST(memory_plan, session_cache_budget_is_a_fraction_of_the_blocks_and_shown) {
  auto o = opts_with(1, 0.5);
  o.session_cache_fraction = 0.25;
  auto p = make_memory_plan(llama3_8b(), o, "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->num_session_cache_blocks, p->num_blocks / 4);
  EXPECT_NE(format_memory_plan(*p).find("session cache: up to " + std::to_string(p->num_blocks / 4) + " blocks"),
            std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(memory_plan_json(*p))["num_session_cache_blocks"], p->num_blocks / 4);
  o.session_cache_fraction = 0;
  EXPECT_EQ(make_memory_plan(llama3_8b(), o, "bfloat16", {{80 * GiB, 80 * GiB}})->num_session_cache_blocks, 0);
  o.session_cache_fraction = 0.25;
  o.enable_prefix_caching = false;  // pins live in the prefix cache: none without it
  EXPECT_EQ(make_memory_plan(llama3_8b(), o, "bfloat16", {{80 * GiB, 80 * GiB}})->num_session_cache_blocks, 0);
}

plan_model_shape smollm2_135m() {
  plan_model_shape m;
  m.vocab_size = 49152;
  m.hidden_size = 576;
  m.intermediate_size = 1536;
  m.num_layers = 30;
  m.num_heads = 9;
  m.num_kv_heads = 3;
  m.head_dim = 64;
  m.max_position_embeddings = 8192;
  m.tie_word_embeddings = true;
  return m;
}

engine_options cpu_opts(int32_t session_len, int32_t max_concurrent_requests) {
  engine_options o;  // neither cache_max_entry_count nor kv_cache_memory: the default rule
  o.device = "cpu";
  o.session_len = session_len;
  o.max_concurrent_requests = max_concurrent_requests;
  return o;
}

constexpr uint64_t kSmolBlock = 64ull * 30 * 3 * 64 * 2 * 2;  // float16 K and V of 64 tokens (the CPU's auto KV dtype)

TEST(memory_plan_cpu_default, a_23gib_host_gets_the_4gib_cap_not_most_of_its_ram) {
  // 256 full 8192-token sequences would need 45 GiB (float16 KV); the old default took 0.8 of the ~22 GiB left.
  auto p = make_memory_plan(smollm2_135m(), cpu_opts(8192, 256), "float32", {{23 * GiB, 23 * GiB}});
  ASSERT_TRUE(p.ok()) << p.err().message;
  EXPECT_EQ(p->block_bytes, kSmolBlock);
  EXPECT_EQ(p->num_blocks, static_cast<int64_t>(4 * GiB / kSmolBlock));
  EXPECT_LE(p->ranks[0].kv_bytes, 4 * GiB);
  EXPECT_NE(p->kv_rule.find("cpu default: the 4.00 GiB cap"), std::string::npos) << p->kv_rule;
  EXPECT_NE(p->kv_rule.find("256 full 8192-token sequences would need 45.00 GiB"), std::string::npos) << p->kv_rule;
  EXPECT_NE(format_memory_plan(*p).find("KV rule: cpu default"), std::string::npos);
}

TEST(memory_plan_cpu_default, fewer_sessions_take_only_what_they_need) {
  auto p = make_memory_plan(smollm2_135m(), cpu_opts(2048, 4), "float32", {{23 * GiB, 23 * GiB}});
  ASSERT_TRUE(p.ok()) << p.err().message;
  EXPECT_EQ(p->num_blocks, 4 * (2048 / 64));
  EXPECT_EQ(p->max_full_sessions, 4);
  EXPECT_NE(p->kv_rule.find("cpu default: 4 full 2048-token sequences"), std::string::npos) << p->kv_rule;
}

TEST(memory_plan_cpu_default, one_full_sequence_even_above_the_cap) {
  // A 131072-token Llama-3-8B sequence is 16 GiB of KV: the default still serves one.
  auto p = make_memory_plan(llama3_8b(), cpu_opts(131072, 256), "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p.ok()) << p.err().message;
  EXPECT_EQ(p->num_blocks, 131072 / 64);
  EXPECT_EQ(p->max_full_sessions, 1);
  EXPECT_NE(p->kv_rule.find("one full 131072-token sequence, more than the 4.00 GiB cap"), std::string::npos)
      << p->kv_rule;
}

TEST(memory_plan_cpu_default, a_small_host_gets_the_ratio_when_that_is_less) {
  auto p = make_memory_plan(smollm2_135m(), cpu_opts(2048, 256), "float32", {{2 * GiB, 2 * GiB}});
  ASSERT_TRUE(p.ok()) << p.err().message;
  const auto& r = p->ranks[0];
  EXPECT_LT(r.available_for_kv, 2 * GiB);
  EXPECT_EQ(p->num_blocks, static_cast<int64_t>(static_cast<uint64_t>(0.8 * r.available_for_kv) / kSmolBlock));
  EXPECT_NE(p->kv_rule.find("cpu default: ratio 0.80"), std::string::npos) << p->kv_rule;
}

TEST(memory_plan_cpu_default, tensor_parallel_ranks_share_the_cap) {
  auto o = cpu_opts(8192, 256);
  o.tp = 3;
  auto p = make_memory_plan(smollm2_135m(), o, "float32", std::vector<device_memory>(3, {8 * GiB, 8 * GiB}));
  ASSERT_TRUE(p.ok()) << p.err().message;
  EXPECT_EQ(p->block_bytes, kSmolBlock / 3);  // one KV head per rank
  EXPECT_EQ(p->num_blocks, static_cast<int64_t>(4 * GiB / 3 / (kSmolBlock / 3)));
  EXPECT_LE(3 * p->ranks[0].kv_bytes, 4 * GiB);
}

TEST(memory_plan_cpu_default, explicit_ratio_blocks_and_bytes_are_kept) {
  auto o = cpu_opts(8192, 256);
  o.cache_max_entry_count = 0.8;  // asked for: the old behaviour, most of the host
  auto p = make_memory_plan(smollm2_135m(), o, "float32", {{23 * GiB, 23 * GiB}});
  ASSERT_TRUE(p.ok()) << p.err().message;
  EXPECT_EQ(p->num_blocks, static_cast<int64_t>(static_cast<uint64_t>(0.8 * p->ranks[0].available_for_kv) / kSmolBlock));
  EXPECT_GT(p->ranks[0].kv_bytes, 17 * GiB);
  EXPECT_EQ(p->kv_rule.find("cpu default"), std::string::npos) << p->kv_rule;
  o.cache_max_entry_count = 1000;
  p = make_memory_plan(smollm2_135m(), o, "float32", {{23 * GiB, 23 * GiB}});
  ASSERT_TRUE(p.ok()) << p.err().message;
  EXPECT_EQ(p->num_blocks, 1000);
  EXPECT_EQ(p->kv_rule, "1000 blocks");
  o.cache_max_entry_count.reset();
  o.kv_cache_memory = 6 * GiB;
  p = make_memory_plan(smollm2_135m(), o, "float32", {{23 * GiB, 23 * GiB}});
  ASSERT_TRUE(p.ok()) << p.err().message;
  EXPECT_EQ(p->num_blocks, static_cast<int64_t>(6 * GiB / kSmolBlock));
  EXPECT_EQ(p->kv_rule, "kv-cache-memory 6.00 GiB");
}

TEST(memory_plan_cpu_default, a_gpu_keeps_the_ratio_default) {
  auto o = cpu_opts(8192, 256);
  o.device = "cuda";
  auto p = make_memory_plan(llama3_8b(), o, "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(p.ok()) << p.err().message;
  EXPECT_EQ(p->num_blocks, static_cast<int64_t>(static_cast<uint64_t>(0.8 * p->ranks[0].available_for_kv) / (8 * MiB)));
  EXPECT_EQ(p->kv_rule, "ratio 0.80 of the memory left after weights and reserve");
}

TEST(byte_size, parses_units) {
  EXPECT_EQ(*parse_byte_size("80GiB"), 80 * GiB);
  EXPECT_EQ(*parse_byte_size("20 GB"), 20000000000ull);
  EXPECT_EQ(*parse_byte_size("512MiB"), 512 * MiB);
  EXPECT_EQ(*parse_byte_size("1073741824"), GiB);
  EXPECT_FALSE(parse_byte_size("lots").ok());
  EXPECT_FALSE(parse_byte_size("12 parsecs").ok());
  EXPECT_FALSE(parse_byte_size("").ok());
}

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

TEST(memory_plan, kv_cache_dtype_sizes_the_blocks_auto_is_float16_on_cpu) {
  engine_options o = opts_with(1, 0.5);
  o.device = "cpu";
  auto cpu_auto = make_memory_plan(llama3_8b(), o, "float32", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(cpu_auto.ok()) << cpu_auto.err().message;
  EXPECT_EQ(cpu_auto->kv_dtype, "float16");
  EXPECT_EQ(cpu_auto->block_bytes, 8 * MiB);  // 2 bytes although the runtime dtype is float32
  o.model.kv_cache_dtype = "float32";
  auto cpu_f32 = make_memory_plan(llama3_8b(), o, "float32", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(cpu_f32.ok());
  EXPECT_EQ(cpu_f32->kv_dtype, "float32");
  EXPECT_EQ(cpu_f32->block_bytes, 16 * MiB);
  auto gpu = make_memory_plan(llama3_8b(), opts_with(1, 0.5), "bfloat16", {{80 * GiB, 80 * GiB}});
  ASSERT_TRUE(gpu.ok());
  EXPECT_EQ(gpu->kv_dtype, "bfloat16");  // auto on a GPU: the runtime dtype
}

}  // namespace
}  // namespace troupe
