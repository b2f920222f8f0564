// The CPU forward pass of the newer families against transformers references made by
// tools/make_tiny_fixtures.py (tests/data/fixtures): Qwen3 (q/k norms, free head_dim), Phi-3 (fused
// projections, LongRoPE long and short), Llama 3 rope scaling, from HF folders and from GGUF files
// (qwen3, phi3, and llama with rope_freqs.weight).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/cpu_model.h"
#include "runtime/cpu_comm.h"
#include "runtime/fused_weights.h"
#include "runtime/model_config.h"
#include "runtime/model_plan.h"
#include "runtime/model_weights.h"
#include "runtime/tensor_parallel.h"
#include "runtime/weight_source.h"

namespace troupe {
namespace {

constexpr int64_t kBlockLen = 16;
constexpr int64_t kNumBlocks = 64;

std::string fixtures() { return std::string(TROUPE_TEST_DATA_DIR) + "/fixtures/"; }

struct prompt_ref {
  std::vector<int32_t> input_ids;
  std::vector<std::vector<float>> logits_all;
  std::vector<float> logits_last;
  std::vector<int32_t> argmax_all, greedy;
};

std::vector<prompt_ref> load_reference(const std::string& dir) {
  std::ifstream in(dir + "/reference.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str());
  std::vector<prompt_ref> out;
  for (const auto& p : j["prompts"]) {
    prompt_ref r;
    r.input_ids = p["input_ids"].get<std::vector<int32_t>>();
    if (p.contains("logits_all_positions")) r.logits_all = p["logits_all_positions"].get<std::vector<std::vector<float>>>();
    r.logits_last = p["logits_last"].get<std::vector<float>>();
    r.argmax_all = p["argmax_all_positions"].get<std::vector<int32_t>>();
    r.greedy = p["greedy_continuation"].get<std::vector<int32_t>>();
    out.push_back(std::move(r));
  }
  return out;
}

double rel_error(const float* out, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (out[i] - ref[i]) * static_cast<double>(out[i] - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

int32_t argmax(const float* row, int64_t n) { return static_cast<int32_t>(std::max_element(row, row + n) - row); }

seq_step make_step(const std::vector<int32_t>& all, size_t begin, size_t end, const std::vector<int32_t>& table,
                   bool all_logits) {
  seq_step s;
  s.seq_id = 1;
  s.tokens.assign(all.begin() + begin, all.begin() + end);
  s.start_pos = static_cast<int32_t>(begin);
  s.block_table = table;
  s.want_all_logits = all_logits;
  s.want_logits = true;
  return s;
}

struct family_case {
  const char* folder;   // reference.json lives here
  const char* weights;  // "" = the HF folder itself, else a file inside it (model.gguf)
};

std::ostream& operator<<(std::ostream& os, const family_case& c) { return os << c.folder << "/" << c.weights; }

class model_family : public ::testing::TestWithParam<family_case> {
 protected:
  std::string dir() const { return fixtures() + GetParam().folder; }
  std::string path() const { return *GetParam().weights ? dir() + "/" + GetParam().weights : dir(); }

  std::unique_ptr<cpu_model> load() const {
    auto cfg = read_model_config(path());
    EXPECT_TRUE(cfg.ok()) << cfg.err().to_string();
    if (!cfg.ok()) return nullptr;
    auto src = open_weights(path());
    EXPECT_TRUE(src.ok()) << src.err().to_string();
    if (!src.ok()) return nullptr;
    auto w = load_model_weights(*cfg, **src);
    EXPECT_TRUE(w.ok()) << w.err().to_string();
    if (!w.ok()) return nullptr;
    auto m = cpu_model::create(*cfg, std::move(*w), {kNumBlocks, kBlockLen, 2});
    EXPECT_TRUE(m.ok()) << m.err().to_string();
    return m.ok() ? std::move(*m) : nullptr;
  }
};

TEST_P(model_family, matches_transformers_logits_argmax_and_greedy_continuation) {
  auto m = load();
  ASSERT_NE(m, nullptr);
  const auto refs = load_reference(dir());
  ASSERT_FALSE(refs.empty());
  const int64_t vocab = m->config().vocab_size;
  std::vector<int32_t> table(kNumBlocks);
  std::iota(table.rbegin(), table.rend(), 0);  // blocks in descending order: never contiguous by accident
  for (const auto& r : refs) {
    const int64_t n = static_cast<int64_t>(r.input_ids.size());
    ASSERT_LE(n + 24, kNumBlocks * kBlockLen);
    step_batch b;
    b.seqs.push_back(make_step(r.input_ids, 0, r.input_ids.size(), table, true));
    step_logits out;
    ASSERT_TRUE(m->forward(b, out).ok());
    ASSERT_EQ(out.num_rows(), n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(argmax(out.row(i), vocab), r.argmax_all[i]) << "prompt of " << n << " tokens, position " << i;
      if (!r.logits_all.empty()) EXPECT_LT(rel_error(out.row(i), r.logits_all[i]), 1e-4) << "position " << i;
    }
    EXPECT_LT(rel_error(out.row(n - 1), r.logits_last), 1e-4) << "prompt of " << n << " tokens";
    std::vector<int32_t> seq = r.input_ids, generated;
    int32_t next = argmax(out.row(n - 1), vocab);
    for (int i = 0; i < 24; ++i) {
      generated.push_back(next);
      seq.push_back(next);
      step_batch d;
      d.seqs.push_back(make_step(seq, seq.size() - 1, seq.size(), table, false));
      ASSERT_TRUE(m->forward(d, out).ok());
      next = argmax(out.row(0), vocab);
    }
    EXPECT_EQ(generated, r.greedy) << "prompt of " << n << " tokens";
  }
}

TEST_P(model_family, chunked_prefill_is_bit_identical_to_whole) {
  auto m = load();
  ASSERT_NE(m, nullptr);
  const auto refs = load_reference(dir());
  const auto& ids = refs.back().input_ids;  // the longest prompt
  std::vector<int32_t> table(kNumBlocks);
  std::iota(table.begin(), table.end(), 0);
  step_batch whole;
  whole.seqs.push_back(make_step(ids, 0, ids.size(), table, true));
  step_logits a;
  ASSERT_TRUE(m->forward(whole, a).ok());
  std::vector<float> chunked;
  for (size_t pos = 0; pos < ids.size();) {
    const size_t end = std::min(ids.size(), pos + 37);
    step_batch b;
    b.seqs.push_back(make_step(ids, pos, end, table, true));
    step_logits out;
    ASSERT_TRUE(m->forward(b, out).ok());
    chunked.insert(chunked.end(), out.data.begin(), out.data.end());
    pos = end;
  }
  ASSERT_EQ(chunked.size(), a.data.size());
  EXPECT_EQ(0, std::memcmp(chunked.data(), a.data.data(), chunked.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(fixtures, model_family,
                         ::testing::Values(family_case{"tiny-qwen3", ""}, family_case{"tiny-qwen3-bf16", ""},
                                           family_case{"tiny-qwen3-bf16", "model.gguf"},
                                           family_case{"tiny-phi3", ""}, family_case{"tiny-phi3-bf16", ""},
                                           family_case{"tiny-phi3-bf16", "model.gguf"},
                                           family_case{"tiny-phi3-short", ""},
                                           family_case{"tiny-llama3-bf16", ""},
                                           family_case{"tiny-llama3-bf16", "model.gguf"}),
                         [](const auto& info) {
                           std::string n = std::string(info.param.folder) + (*info.param.weights ? "_gguf" : "");
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

// `troupe plan` for the new families: the planned KV pool and weights equal what the CPU backend
// allocates for a float32 checkpoint (the plan's weight formula counts Qwen3's q/k norms).
TEST(model_family_plan, plan_equals_allocation) {
  for (const char* name : {"tiny-qwen3", "tiny-phi3", "tiny-phi3-short"}) {
    SCOPED_TRACE(name);
    const std::string path = fixtures() + name;
    auto cfg = read_model_config(path);
    ASSERT_TRUE(cfg.ok()) << cfg.err().message;
    engine_options o;
    o.device = "cpu";
    o.model.model = path;  // the plan counts the weights this checkpoint holds
    o.model.dtype = "float32";
    o.model.kv_cache_dtype = "float32";
    o.cache_max_entry_count = 12;  // blocks
    o.session_len = 64;
    o.device_memory = 64ull << 30;
    auto plan = plan_for_model(*cfg, o, simulated_or_host_devices(o));
    ASSERT_TRUE(plan.ok()) << plan.err().message;
    auto w = load_model_weights(*cfg, path, load_format::weights);
    ASSERT_TRUE(w.ok()) << w.err().message;
    cpu_model_options co;
    co.num_kv_blocks = plan->num_blocks;
    co.block_seq_len = plan->block_seq_len;
    co.num_threads = 1;
    auto m = cpu_model::create(*cfg, std::move(*w), co);
    ASSERT_TRUE(m.ok()) << m.err().message;
    EXPECT_EQ(plan->ranks[0].kv_bytes, (*m)->memory().kv_bytes);
    EXPECT_EQ(plan->ranks[0].weights_bytes, (*m)->memory().weights_bytes);
  }
}

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

// Tensor parallelism over the new families, loaded as the model loader does (fused Phi-3 tensors
// split first, then sharded): two CPU ranks give transformers' greedy continuation, so the q/k norms
// (replicated) and the split projections shard correctly.
TEST(model_family_tp, two_ranks_continue_like_transformers) {
  for (const char* name : {"tiny-qwen3", "tiny-phi3", "tiny-llama3-bf16/model.gguf"}) {
    SCOPED_TRACE(name);
    const std::string path = fixtures() + name;
    const std::string folder = fixtures() + std::string(name).substr(0, std::string(name).find('/'));
    auto cfg = read_model_config(path);
    ASSERT_TRUE(cfg.ok()) << cfg.err().message;
    auto opened = open_weights(path);
    ASSERT_TRUE(opened.ok());
    auto src = split_fused_projections(std::move(*opened), *cfg);
    ASSERT_TRUE(src.ok()) << src.err().message;
    constexpr int32_t world = 2;
    auto comm = std::make_shared<cpu_comm_group>(world);
    std::vector<std::unique_ptr<cpu_model>> ranks;
    for (int32_t r = 0; r < world; ++r) {
      auto shard = make_sharded_source(**src, *cfg, {r, world});
      ASSERT_TRUE(shard.ok()) << shard.err().message;
      const model_config rc = shard_config(*cfg, {r, world});
      auto w = load_model_weights(rc, **shard);
      ASSERT_TRUE(w.ok()) << w.err().message;
      cpu_model_options o;
      o.num_kv_blocks = kNumBlocks;
      o.block_seq_len = kBlockLen;
      o.num_threads = 1;
      o.comm = comm;
      o.tp_rank = r;
      auto m = cpu_model::create(rc, std::move(*w), o);
      ASSERT_TRUE(m.ok()) << m.err().message;
      ranks.push_back(std::move(*m));
    }
    const auto ref = load_reference(folder)[1];
    std::vector<int32_t> table(kNumBlocks);
    std::iota(table.begin(), table.end(), 0);
    std::vector<int32_t> seq = ref.input_ids, generated;
    int64_t step_id = 0;
    for (int i = 0; i <= 8; ++i) {
      step_batch b;
      b.step_id = ++step_id;
      const size_t begin = i == 0 ? 0 : seq.size() - 1;
      b.seqs.push_back(make_step(seq, begin, seq.size(), table, false));
      std::vector<step_logits> outs(world);
      std::vector<std::thread> threads;
      for (int32_t r = 0; r < world; ++r)
        threads.emplace_back([&, r] { EXPECT_TRUE(ranks[static_cast<size_t>(r)]->forward(b, outs[static_cast<size_t>(r)]).ok()); });
      for (auto& t : threads) t.join();
      ASSERT_EQ(outs[0].num_rows(), 1);
      if (i == 0) EXPECT_LT(rel_error(outs[0].row(0), ref.logits_last), 1e-4);
      if (i == 8) break;
      const int32_t next = argmax(outs[0].row(0), cfg->vocab_size);
      generated.push_back(next);
      seq.push_back(next);
    }
    EXPECT_EQ(generated, std::vector<int32_t>(ref.greedy.begin(), ref.greedy.begin() + 8));
  }
}

}  // namespace
}  // namespace troupe
