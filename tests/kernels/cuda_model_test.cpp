// The whole CUDA forward pass on the HF reference fixtures (logits at every prompt position,
// 24-token greedy continuations), chunked prefill and mixed batches agreeing with one-shot
// prefill, dummy weights of an odd shape, and no device allocation after start-up.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "gpu_test_util.h"
#include "kernels/cuda_model.h"
#include "kernels/device_memory.h"
#include "runtime/weight_source.h"

namespace troupe {
namespace {

using json = nlohmann::json;

struct fixture_prompt {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits_all;
  std::vector<int32_t> greedy;
};

std::vector<fixture_prompt> read_reference(const std::string& dir) {
  std::ifstream f(dir + "/reference.json");
  const json j = json::parse(f);
  std::vector<fixture_prompt> out;
  for (const auto& p : j.at("prompts"))
    out.push_back({p.at("input_ids").get<std::vector<int32_t>>(),
                   p.at("logits_all_positions").get<std::vector<std::vector<float>>>(),
                   p.at("greedy_continuation").get<std::vector<int32_t>>()});
  return out;
}

// Hands out distinct block ids in a scrambled order (so tables are not contiguous).
struct block_allocator {
  std::vector<int32_t> free;
  explicit block_allocator(int64_t n) {
    for (int64_t i = 0; i < n; ++i) free.push_back(static_cast<int32_t>((i * 37) % n));
  }
  void cover(seq_step& s, int64_t bs) {
    const int64_t need = (s.start_pos + static_cast<int64_t>(s.tokens.size()) + bs - 1) / bs;
    while (static_cast<int64_t>(s.block_table.size()) < need) {
      s.block_table.push_back(free.back());
      free.pop_back();
    }
  }
};

double rel_error(const float* got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * double(got[i] - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

int32_t argmax(const float* row, int64_t n) { return static_cast<int32_t>(std::max_element(row, row + n) - row); }

float top2_margin(const float* row, int64_t n) {
  std::vector<float> v(row, row + n);
  std::partial_sort(v.begin(), v.begin() + 2, v.end(), std::greater<float>());
  return v[0] - v[1];
}

class cuda_model_fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(cuda_model_fixture, matches_hf_logits_and_greedy_continuations) {
  TROUPE_REQUIRE_GPU();
  const std::string dir = std::string(TROUPE_FIXTURES_DIR) + "/" + GetParam();
  auto cfg = read_model_config(dir);
  ASSERT_TRUE(cfg.ok()) << cfg.err().to_string();
  auto weights = open_weights(dir);
  ASSERT_TRUE(weights.ok()) << weights.err().to_string();
  cuda_model_options o;
  o.block_seq_len = 16;
  o.num_kv_blocks = 400;
  o.max_batch_size = 8;
  o.max_prefill_token_num = 512;
  o.session_len = 1024;
  auto model = cuda_model::create(*cfg, weights->get(), o);
  ASSERT_TRUE(model.ok()) << model.err().to_string();
  cuda_model& m = **model;
  const uint64_t allocations = device_allocation_count();
  const int64_t V = cfg->vocab_size, bs = m.block_seq_len();
  const auto prompts = read_reference(dir);
  block_allocator blocks(m.num_kv_blocks());
  step_logits out;

  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    const auto& p = prompts[pi];
    SCOPED_TRACE(GetParam() + " prompt " + std::to_string(pi) + " (" + std::to_string(p.ids.size()) + " tokens)");
    // 1. One-shot prefill, logits at every position.
    seq_step s;
    s.seq_id = static_cast<int64_t>(pi);
    s.tokens = p.ids;
    s.want_all_logits = true;
    blocks.cover(s, bs);
    step_batch b{{s}};
    auto st = m.forward(b, out);
    ASSERT_TRUE(st.ok()) << st.err().to_string();
    ASSERT_EQ(out.num_rows(), static_cast<int64_t>(p.ids.size()));
    for (size_t t = 0; t < p.ids.size(); ++t) {
      EXPECT_LE(rel_error(out.row(t), p.logits_all[t]), 1e-2) << "position " << t;
      if (top2_margin(p.logits_all[t].data(), V) > 0.05f)
        EXPECT_EQ(argmax(out.row(t), V), argmax(p.logits_all[t].data(), V)) << "position " << t;
    }
    // 2. Greedy decode, one token per step, through the paged cache.
    std::vector<int32_t> gen;
    int32_t next = argmax(out.row(out.num_rows() - 1), V);
    float margin = top2_margin(out.row(out.num_rows() - 1), V);
    float scale = std::fabs(*std::max_element(out.row(out.num_rows() - 1), out.row(out.num_rows() - 1) + V));
    s.want_all_logits = false;
    for (size_t k = 0; k < p.greedy.size(); ++k) {
      gen.push_back(next);
      if (next != p.greedy[k]) break;
      s.start_pos += static_cast<int32_t>(s.tokens.size());
      s.tokens = {next};
      blocks.cover(s, bs);
      b.seqs = {s};
      st = m.forward(b, out);
      ASSERT_TRUE(st.ok()) << st.err().to_string();
      ASSERT_EQ(out.num_rows(), 1);
      next = argmax(out.row(0), V);
      margin = top2_margin(out.row(0), V);
      scale = std::fabs(*std::max_element(out.row(0), out.row(0) + V));
    }
    const size_t k = gen.size() - 1;
    if (gen.back() != p.greedy[k]) {
      // bf16 activations may flip a near-tie of the float32 reference; anything else is a bug.
      if (margin < 2e-2f * std::max(scale, 1.f))
        std::cout << "[   NOTE   ] " << GetParam() << " prompt " << pi << ": near-tie at step " << k << " (margin "
                  << margin << "), continuation compared up to there\n";
      else
        ADD_FAILURE() << "greedy continuation diverges at step " << k << ": got " << gen.back() << ", want "
                      << p.greedy[k] << " (top-2 margin " << margin << ")";
    }
  }
  EXPECT_EQ(device_allocation_count(), allocations) << "forward() must not allocate device memory";
}

TEST_P(cuda_model_fixture, chunked_prefill_and_mixed_batches_agree_with_one_shot) {
  TROUPE_REQUIRE_GPU();
  const std::string dir = std::string(TROUPE_FIXTURES_DIR) + "/" + GetParam();
  auto cfg = read_model_config(dir);
  ASSERT_TRUE(cfg.ok()) << cfg.err().to_string();
  auto weights = open_weights(dir);
  ASSERT_TRUE(weights.ok()) << weights.err().to_string();
  cuda_model_options o;
  o.block_seq_len = 16;
  o.num_kv_blocks = 300;
  o.max_batch_size = 8;
  o.max_prefill_token_num = 512;
  o.session_len = 1024;
  o.max_splits = 4;
  auto model = cuda_model::create(*cfg, weights->get(), o);
  ASSERT_TRUE(model.ok()) << model.err().to_string();
  cuda_model& m = **model;
  const uint64_t allocations = device_allocation_count();
  const int64_t V = cfg->vocab_size, bs = m.block_seq_len();
  const auto prompts = read_reference(dir);
  block_allocator blocks(m.num_kv_blocks());

  // All prompts in 7-token chunks, advancing together in shared steps (mixed lengths per step).
  std::vector<seq_step> seqs(prompts.size());
  std::vector<std::vector<float>> last(prompts.size());
  bool any = true;
  std::vector<size_t> done(prompts.size(), 0);
  while (any) {
    any = false;
    step_batch b;
    std::vector<size_t> which;
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (done[i] >= prompts[i].ids.size()) continue;
      any = true;
      auto& s = seqs[i];
      s.seq_id = static_cast<int64_t>(i);
      s.start_pos = static_cast<int32_t>(done[i]);
      const size_t n = std::min<size_t>(7, prompts[i].ids.size() - done[i]);
      s.tokens.assign(prompts[i].ids.begin() + done[i], prompts[i].ids.begin() + done[i] + n);
      s.want_logits = done[i] + n == prompts[i].ids.size();
      blocks.cover(s, bs);
      b.seqs.push_back(s);
      which.push_back(i);
      done[i] += n;
    }
    if (!any) break;
    step_logits out;
    auto st = m.forward(b, out);
    ASSERT_TRUE(st.ok()) << st.err().to_string();
    for (int64_t r = 0; r < out.num_rows(); ++r) {
      const size_t i = which[out.row_seq[r]];
      last[i].assign(out.row(r), out.row(r) + V);
    }
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_EQ(last[i].size(), static_cast<size_t>(V)) << "prompt " << i << " got no logits";
    EXPECT_LE(rel_error(last[i].data(), prompts[i].logits_all.back()), 1e-2) << "prompt " << i;
  }
  // Then 8 decode steps of all sequences at once must reproduce each greedy continuation.
  std::vector<int32_t> next(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) next[i] = argmax(last[i].data(), V);
  for (int k = 0; k < 8; ++k) {
    step_batch b;
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(next[i], prompts[i].greedy[k]) << "prompt " << i << " step " << k;
      auto& s = seqs[i];
      s.start_pos += static_cast<int32_t>(s.tokens.size());
      s.tokens = {prompts[i].greedy[k]};  // teacher-forced, so one divergence does not cascade
      s.want_logits = true;
      blocks.cover(s, bs);
      b.seqs.push_back(s);
    }
    step_logits out;
    auto st = m.forward(b, out);
    ASSERT_TRUE(st.ok()) << st.err().to_string();
    ASSERT_EQ(out.num_rows(), static_cast<int64_t>(prompts.size()));
    for (size_t i = 0; i < prompts.size(); ++i) next[i] = argmax(out.row(i), V);
  }
  EXPECT_EQ(device_allocation_count(), allocations);
}

INSTANTIATE_TEST_SUITE_P(fixtures, cuda_model_fixture,
                         ::testing::Values("tiny-llama", "tiny-llama-bf16", "tiny-qwen2", "tiny-qwen2-bf16"));

model_config odd_config() {
  model_config c;
  c.architecture = "llama";
  c.vocab_size = 1003;
  c.hidden_size = 200;
  c.intermediate_size = 333;
  c.num_layers = 3;
  c.num_heads = 5;
  c.num_kv_heads = 1;
  c.head_dim = 64;
  c.max_position_embeddings = 2048;
  c.rope.type = "llama3";
  c.rope.factor = 8;
  c.rope.original_max_position_embeddings = 256;
  return c;
}

TEST(cuda_model, dummy_weights_of_an_odd_shape_run_batches_of_19_and_99) {
  TROUPE_REQUIRE_GPU();
  cuda_model_options o;
  o.dummy_weights = true;
  o.block_seq_len = 32;
  o.num_kv_blocks = 1000;
  o.max_batch_size = 99;
  o.max_prefill_token_num = 256;
  o.dtype = kernel_dtype::f16;
  auto model = cuda_model::create(odd_config(), nullptr, o);
  ASSERT_TRUE(model.ok()) << model.err().to_string();
  cuda_model& m = **model;
  const uint64_t allocations = device_allocation_count();
  block_allocator blocks(m.num_kv_blocks());
  for (int batch : {1, 19, 99}) {
    step_batch b;
    for (int i = 0; i < batch; ++i) {
      seq_step s;
      s.seq_id = i;
      s.start_pos = (i * 131) % 700;  // garbage history is fine: only finiteness is checked
      s.tokens = {static_cast<int32_t>(i % 1003)};
      blocks.cover(s, m.block_seq_len());
      b.seqs.push_back(s);
    }
    step_logits out;
    auto st = m.forward(b, out);
    ASSERT_TRUE(st.ok()) << st.err().to_string();
    ASSERT_EQ(out.num_rows(), batch);
    for (float v : out.data) ASSERT_TRUE(std::isfinite(v));
    blocks = block_allocator(m.num_kv_blocks());
  }
  EXPECT_EQ(device_allocation_count(), allocations);
}

TEST(cuda_model, rejects_bad_steps_without_touching_the_device) {
  TROUPE_REQUIRE_GPU();
  cuda_model_options o;
  o.dummy_weights = true;
  o.block_seq_len = 16;
  o.num_kv_blocks = 8;
  o.max_batch_size = 4;
  o.max_prefill_token_num = 64;
  o.warm_up = false;
  auto model = cuda_model::create(odd_config(), nullptr, o);
  ASSERT_TRUE(model.ok()) << model.err().to_string();
  step_logits out;
  step_batch b;
  seq_step s;
  s.tokens = {5000};  // out of vocab
  s.block_table = {0};
  b.seqs = {s};
  EXPECT_EQ((*model)->forward(b, out).err().code, errc::invalid_argument);
  b.seqs[0].tokens = {1};
  b.seqs[0].block_table = {8};  // out of the pool
  EXPECT_EQ((*model)->forward(b, out).err().code, errc::invalid_argument);
  b.seqs[0].start_pos = 16;  // needs 2 blocks
  b.seqs[0].block_table = {0};
  EXPECT_EQ((*model)->forward(b, out).err().code, errc::invalid_argument);
  b.seqs[0].block_table = {0, 1};
  EXPECT_TRUE((*model)->forward(b, out).ok());
}

TEST(cuda_model, too_large_a_plan_is_out_of_memory_not_a_crash) {
  TROUPE_REQUIRE_GPU();
  cuda_model_options o;
  o.dummy_weights = true;
  o.num_kv_blocks = int64_t{1} << 40;
  auto model = cuda_model::create(odd_config(), nullptr, o);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.err().code, errc::out_of_memory);
}

}  // namespace
}  // namespace troupe
