// Tensor parallelism on the CPU: the sharded weight source, the all-reduce group, and the whole
// model at --tp 2 / 4 (ranks on their own threads, as executors run them) against --tp 1 on the
// HF fixtures: every position's logits within 1e-5 relative, and identical greedy continuations.
#include "runtime/tensor_parallel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/cpu_comm.h"
#include "runtime/cpu_model.h"
#include "runtime/model_weights.h"
#include "support/wait_until.h"

namespace troupe {
namespace {

constexpr int64_t kBlockLen = 16;
constexpr int64_t kNumBlocks = 64;

std::string fixture(const std::string& name) { return std::string(TROUPE_FIXTURES_DIR) + "/" + name; }

// A model split over `world` ranks, stepped together (one thread per rank, like the executors).
class tp_model {
 public:
  tp_model(const std::string& dir, int32_t world) : world_(world) {
    auto cfg = read_model_config(dir);
    EXPECT_TRUE(cfg.ok());
    cfg_ = *cfg;
    auto src = open_weights(dir);
    EXPECT_TRUE(src.ok());
    std::shared_ptr<cpu_comm_group> comm = world > 1 ? std::make_shared<cpu_comm_group>(world) : nullptr;
    for (int32_t r = 0; r < world; ++r) {
      model_config rc = world == 1 ? cfg_ : shard_config(cfg_, {r, world});
      std::unique_ptr<weight_source> shard;
      if (world > 1) {
        auto s = make_sharded_source(**src, cfg_, {r, world});
        EXPECT_TRUE(s.ok()) << s.err().to_string();
        shard = std::move(*s);
      }
      auto w = load_model_weights(rc, world > 1 ? *shard : **src);
      EXPECT_TRUE(w.ok()) << w.err().to_string();
      cpu_model_options o;
      o.num_kv_blocks = kNumBlocks;
      o.block_seq_len = kBlockLen;
      o.num_threads = 1;
      o.comm = comm;
      o.tp_rank = r;
      auto m = cpu_model::create(rc, std::move(*w), o);
      EXPECT_TRUE(m.ok()) << m.err().to_string();
      ranks_.push_back(std::move(*m));
    }
  }

  // Runs one step on every rank; returns rank 0's logits.
  step_logits step(step_batch b) {
    b.step_id = ++step_id_;
    std::vector<step_logits> outs(static_cast<size_t>(world_));
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int32_t r = 0; r < world_; ++r)
      threads.emplace_back([&, r] {
        status st = ranks_[static_cast<size_t>(r)]->forward(b, outs[static_cast<size_t>(r)]);
        if (!st.ok()) {
          ADD_FAILURE() << "rank " << r << ": " << st.err().to_string();
          ++failures;
        }
      });
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    for (int32_t r = 1; r < world_; ++r) EXPECT_EQ(outs[static_cast<size_t>(r)].num_rows(), 0);
    return outs[0];
  }

  const model_config& config() const { return cfg_; }
  int64_t weight_bytes(int32_t r) const { return static_cast<int64_t>(ranks_[static_cast<size_t>(r)]->memory().weights_bytes); }
  int64_t kv_bytes(int32_t r) const { return static_cast<int64_t>(ranks_[static_cast<size_t>(r)]->memory().kv_bytes); }

 private:
  int32_t world_;
  model_config cfg_;
  int64_t step_id_ = 0;
  std::vector<std::unique_ptr<cpu_model>> ranks_;
};

std::vector<int32_t> table_for(int64_t tokens, int32_t first_block) {
  std::vector<int32_t> t;
  for (int64_t i = 0; i < (tokens + kBlockLen - 1) / kBlockLen; ++i) t.push_back(first_block + static_cast<int32_t>(i));
  return t;
}

struct run_result {
  std::vector<float> prompt_logits;  // [n, vocab]
  std::vector<int32_t> greedy;
};

// The prompt in two chunks (all logits), then `steps` greedy tokens.
run_result run(tp_model& m, const std::vector<int32_t>& prompt, int steps) {
  const int64_t vocab = m.config().vocab_size;
  const auto table = table_for(static_cast<int64_t>(prompt.size()) + steps, 3);
  run_result out;
  const size_t half = prompt.size() / 2;
  for (auto [a, b] : {std::pair<size_t, size_t>{0, half}, {half, prompt.size()}}) {
    if (a == b) continue;  // a one-token prompt has one chunk
    step_batch sb;
    seq_step s;
    s.tokens.assign(prompt.begin() + static_cast<long>(a), prompt.begin() + static_cast<long>(b));
    s.start_pos = static_cast<int32_t>(a);
    s.block_table = table;
    s.want_all_logits = true;
    sb.seqs.push_back(s);
    step_logits l = m.step(sb);
    out.prompt_logits.insert(out.prompt_logits.end(), l.data.begin(), l.data.end());
  }
  int32_t next = static_cast<int32_t>(
      std::max_element(out.prompt_logits.end() - vocab, out.prompt_logits.end()) - (out.prompt_logits.end() - vocab));
  for (int i = 0; i < steps; ++i) {
    out.greedy.push_back(next);
    step_batch sb;
    seq_step s;
    s.tokens = {next};
    s.start_pos = static_cast<int32_t>(prompt.size()) + i;
    s.block_table = table;
    sb.seqs.push_back(s);
    step_logits l = m.step(sb);
    next = static_cast<int32_t>(std::max_element(l.data.begin(), l.data.end()) - l.data.begin());
  }
  return out;
}

double max_row_rel_error(const std::vector<float>& a, const std::vector<float>& ref, int64_t vocab) {
  double worst = 0;
  for (size_t r = 0; r * vocab < ref.size(); ++r) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      const double d = a[r * vocab + i] - ref[r * vocab + i];
      num += d * d;
      den += static_cast<double>(ref[r * vocab + i]) * ref[r * vocab + i];
    }
    worst = std::max(worst, std::sqrt(num / den));
  }
  return worst;
}

std::vector<int32_t> reference_prompt(const std::string& dir, size_t which) {
  std::ifstream in(dir + "/reference.json");
  auto j = nlohmann::json::parse(in);
  return j["prompts"].at(which)["input_ids"].get<std::vector<int32_t>>();
}

struct tp_case {
  const char* model;
  int32_t world;
};

class tensor_parallel_fixture : public ::testing::TestWithParam<tp_case> {};

TEST_P(tensor_parallel_fixture, matches_tp1_logits_within_1e5_and_greedy_exactly) {
  const std::string dir = fixture(GetParam().model);
  tp_model one(dir, 1), many(dir, GetParam().world);
  const int64_t vocab = one.config().vocab_size;
  for (size_t p : {0u, 1u}) {
    const auto prompt = reference_prompt(dir, p);
    run_result a = run(one, prompt, 20), b = run(many, prompt, 20);
    ASSERT_EQ(a.prompt_logits.size(), b.prompt_logits.size());
    EXPECT_LT(max_row_rel_error(b.prompt_logits, a.prompt_logits, vocab), 1e-5) << "prompt " << p;
    EXPECT_EQ(a.greedy, b.greedy) << "prompt " << p;
  }
  // The shards really are split: each rank holds less than the whole, KV too.
  EXPECT_LT(many.weight_bytes(0), one.weight_bytes(0));
  EXPECT_LT(many.kv_bytes(0), one.kv_bytes(0));
}

INSTANTIATE_TEST_SUITE_P(fixtures, tensor_parallel_fixture,
                         ::testing::Values(tp_case{"tiny-llama", 2}, tp_case{"tiny-llama", 4},
                                           tp_case{"tiny-llama-bf16", 2}, tp_case{"tiny-llama-bf16", 4},
                                           tp_case{"tiny-qwen2", 2}, tp_case{"tiny-qwen2-bf16", 2}),
                         [](const auto& info) {
                           std::string n = std::string(info.param.model) + "_tp" + std::to_string(info.param.world);
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(tensor_parallel, invalid_splits_are_refused_with_the_dimension_named) {
  auto cfg = read_model_config(fixture("tiny-qwen2"));  // 6 heads, 2 KV heads, intermediate 256
  ASSERT_TRUE(cfg.ok());
  EXPECT_TRUE(check_tensor_parallel(*cfg, 2).ok());
  auto e4 = check_tensor_parallel(*cfg, 4);
  ASSERT_FALSE(e4.ok());
  EXPECT_NE(e4.err().message.find("6 attention heads"), std::string::npos);
  auto e0 = check_tensor_parallel(*cfg, 0);
  EXPECT_FALSE(e0.ok());
  model_config c = *cfg;
  c.num_heads = 12, c.num_kv_heads = 4;  // 12 % 3 == 0 but 3 and 4 do not divide one another
  auto e3 = check_tensor_parallel(c, 3);
  ASSERT_FALSE(e3.ok());
  EXPECT_NE(e3.err().message.find("KV heads"), std::string::npos);
}

TEST(tensor_parallel, shards_have_the_rank_slices_of_each_tensor) {
  const std::string dir = fixture("tiny-llama");  // 4 heads of 32, 2 KV heads, intermediate 352
  auto cfg = read_model_config(dir);
  auto src = open_weights(dir);
  ASSERT_TRUE(cfg.ok() && src.ok());
  const int64_t D = cfg->head_dim, H = cfg->hidden_size;
  std::vector<float> full, part;
  // --tp 4: rank 3 holds q head 3 and (replicated) KV head 1; o_proj columns of head 3.
  auto s = make_sharded_source(**src, *cfg, {3, 4});
  ASSERT_TRUE(s.ok());
  const std::string p = "model.layers.0.";
  ASSERT_TRUE((*src)->read_f32(p + "self_attn.q_proj.weight", full).ok());
  ASSERT_TRUE((*s)->read_f32(p + "self_attn.q_proj.weight", part).ok());
  ASSERT_EQ(static_cast<int64_t>(part.size()), D * H);
  EXPECT_TRUE(std::equal(part.begin(), part.end(), full.begin() + 3 * D * H));
  ASSERT_TRUE((*src)->read_f32(p + "self_attn.k_proj.weight", full).ok());
  ASSERT_TRUE((*s)->read_f32(p + "self_attn.k_proj.weight", part).ok());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), full.begin() + 1 * D * H));
  ASSERT_TRUE((*src)->read_f32(p + "self_attn.o_proj.weight", full).ok());
  ASSERT_TRUE((*s)->read_f32(p + "self_attn.o_proj.weight", part).ok());
  ASSERT_EQ(static_cast<int64_t>(part.size()), H * D);
  for (int64_t row = 0; row < H; ++row)
    for (int64_t c = 0; c < D; ++c) ASSERT_EQ(part[row * D + c], full[row * 4 * D + 3 * D + c]);
  const tensor_info* t = (*s)->find(p + "mlp.down_proj.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{H, cfg->intermediate_size / 4}));
  EXPECT_EQ((*s)->find("model.embed_tokens.weight")->shape, (*src)->find("model.embed_tokens.weight")->shape);
}

TEST(cpu_comm_group, sums_in_rank_order_and_gives_every_rank_the_same_bits) {
  constexpr int W = 3;
  cpu_comm_group g(W);
  std::vector<std::vector<float>> data(W);
  for (int r = 0; r < W; ++r)
    for (int i = 0; i < 1001; ++i) data[r].push_back(0.1f * static_cast<float>(r + 1) + 1e-7f * static_cast<float>(i));
  std::vector<float> expect(1001);
  for (int i = 0; i < 1001; ++i) {
    const float e = (data[0][i] + data[1][i]) + data[2][i];  // first call, in rank order
    expect[i] = (e + e) + e;                                 // second call
  }
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int r = 0; r < W; ++r)
    ts.emplace_back([&, r] {
      for (int rep = 0; rep < 2; ++rep)
        if (g.all_reduce_sum(r, 1, data[r].data(), 1001).ok()) ++ok;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 2 * W);
  for (int r = 0; r < W; ++r) EXPECT_EQ(data[r], expect);
}

TEST(cpu_comm_group, abort_wakes_ranks_waiting_for_a_failed_one_and_the_next_step_works) {
  cpu_comm_group g(2);
  std::vector<float> a(8, 1.0f), b(8, 2.0f);
  status waiting = ok_status();
  std::thread t([&] { waiting = g.all_reduce_sum(0, 5, a.data(), 8); });  // rank 1 never comes
  EXPECT_TRUE(testing::wait_until([&] { return g.num_waiting() == 1; }));  // rank 0 is blocked in it
  g.abort(5);
  t.join();
  ASSERT_FALSE(waiting.ok());
  EXPECT_EQ(waiting.err().code, errc::cancelled);
  EXPECT_FALSE(g.all_reduce_sum(1, 5, b.data(), 8).ok());  // a straggler of the aborted step
  EXPECT_FALSE(g.all_reduce_sum(1, 4, b.data(), 8).ok());  // an older step
  status s0 = ok_status(), s1 = ok_status();
  std::thread t0([&] { s0 = g.all_reduce_sum(0, 6, a.data(), 8); });
  std::thread t1([&] { s1 = g.all_reduce_sum(1, 6, b.data(), 8); });
  t0.join();
  t1.join();
  EXPECT_TRUE(s0.ok() && s1.ok());
  EXPECT_EQ(a[0], 3.0f);
  EXPECT_EQ(b[7], 3.0f);
}

}  // namespace
}  // namespace troupe
