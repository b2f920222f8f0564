// The whole CUDA forward pass on the HF reference fixtures (logits at every prompt position,
// 24-token greedy continuations), chunked prefill and mixed batches agreeing with one-shot
// prefill, dummy weights of an odd shape, and no device allocation after start-up.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <stdexcept>
#include <tuple>

#include <nlohmann/json.hpp>

#include "gpu_test_util.h"
#include "kernels/cuda_model.h"
#include "kernels/device_memory.h"
#include "runtime/sampler.h"
#include "runtime/weight_source.h"

namespace troupe {
namespace {

using json = nlohmann::json;

struct fixture_prompt {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits_all;  // every position; empty for the long prompt
  std::vector<float> logits_last;              // the last position (always present)
  std::vector<int32_t> argmax_all;             // argmax at every position (always present)
  std::vector<int32_t> greedy;
};

std::vector<fixture_prompt> read_reference(const std::string& dir) {
  std::ifstream f(dir + "/reference.json");
  const json j = json::parse(f);
  std::vector<fixture_prompt> out;
  for (const auto& p : j.at("prompts")) {
    fixture_prompt fp;
    fp.ids = p.at("input_ids").get<std::vector<int32_t>>();
    if (p.contains("logits_all_positions"))
      fp.logits_all = p.at("logits_all_positions").get<std::vector<std::vector<float>>>();
    fp.logits_last = p.at("logits_last").get<std::vector<float>>();
    fp.argmax_all = p.at("argmax_all_positions").get<std::vector<int32_t>>();
    fp.greedy = p.at("greedy_continuation").get<std::vector<int32_t>>();
    out.push_back(std::move(fp));
  }
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
      if (free.empty()) throw std::runtime_error("test block_allocator: out of blocks");
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

double rms(const float* row, int64_t n) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(row[i]) * row[i];
  return std::sqrt(ss / std::max<int64_t>(n, 1));
}

// Parameter: a fixture and the device dtype it runs in.
//
// Design note (tolerances): the HF references are float32. An exact emulation of the forward pass
// with 16-bit weights and activations (tools/precision_budget.py, numpy) puts the ideal
// relative logit error on these 4-layer random fixtures at up to 2.8% in bf16 (median 1.3-1.8%)
// and 0.34% in fp16: bf16's 8-bit mantissa alone rounds tiny-llama's float32 weights to 2.3%.
// So fp16 must meet the 1e-2 bound; bf16 gets 4e-2. A greedy token may differ from HF's only
// where HF's token is within the dtype's noise of our top logit (a near-tie): 0.05 (fp16) or
// 0.25 (bf16) times the row's RMS logit.
class cuda_model_fixture : public ::testing::TestWithParam<std::tuple<std::string, kernel_dtype>> {
 protected:
  std::string fx() const { return std::get<0>(GetParam()); }
  kernel_dtype dt() const { return std::get<1>(GetParam()); }
  // The shared fixtures, or the ones committed under tests/data/fixtures (Gemma 3).
  std::string dir() const {
    const std::string local = std::string(TROUPE_TEST_DATA_DIR) + "/fixtures/" + fx();
    return std::filesystem::exists(local) ? local : std::string(TROUPE_FIXTURES_DIR) + "/" + fx();
  }
  // The fixture's config and weights (host side: read even where no GPU is present).
  void SetUp() override {
    auto cfg = read_model_config(dir());
    ASSERT_TRUE(cfg.ok()) << cfg.err().to_string();
    cfg_ = *cfg;
    auto weights = open_weights(dir());
    ASSERT_TRUE(weights.ok()) << weights.err().to_string();
    weights_ = std::move(*weights);
  }
  // 16-token blocks, 512-token prefill steps, sessions of 1024, in the parameter's dtype.
  cuda_model_options options(int64_t num_kv_blocks, int32_t max_batch_size) const {
    cuda_model_options o;
    o.dtype = dt();
    o.block_seq_len = 16;
    o.num_kv_blocks = num_kv_blocks;
    o.max_batch_size = max_batch_size;
    o.max_prefill_token_num = 512;
    o.session_len = 1024;
    return o;
  }
  // Prompts past 256 tokens: attention over that many 16-bit keys adds its own error (measured on
  // the H100: 1.03% in fp16 at the end of the 300-token prompt after chunked prefill).
  double rel_tol(size_t prompt_len = 0) const {
    const double t = dt() == kernel_dtype::f16 ? 1e-2 : 4e-2;
    return prompt_len > 256 ? 2 * t : t;
  }
  float tie_tol(const float* row, int64_t V) const {
    return static_cast<float>((dt() == kernel_dtype::f16 ? 0.05 : 0.25) * rms(row, V));
  }
  model_config cfg_;
  std::unique_ptr<weight_source> weights_;
  // `want` is our top token, or HF's token lies within tie_tol of our top logit.
  void expect_top(const float* row, int64_t V, int32_t want, const std::string& where) const {
    const int32_t got = argmax(row, V);
    if (got == want) return;
    EXPECT_LE(row[got] - row[want], tie_tol(row, V))
        << where << ": got token " << got << ", HF's " << want << " is " << row[got] - row[want]
        << " below it (tolerance " << tie_tol(row, V) << ")";
  }
};

TEST_P(cuda_model_fixture, matches_hf_logits_and_greedy_continuations) {
  TROUPE_REQUIRE_GPU();
  cuda_model_options o = options(/*num_kv_blocks=*/400, /*max_batch_size=*/8);
  auto model = cuda_model::create(cfg_, weights_.get(), o);
  ASSERT_TRUE(model.ok()) << model.err().to_string();
  cuda_model& m = **model;
  const uint64_t allocations = device_allocation_count();
  const int64_t V = cfg_.vocab_size, bs = m.block_seq_len();
  const auto prompts = read_reference(dir());
  block_allocator blocks(m.num_kv_blocks());
  step_logits out;

  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    const auto& p = prompts[pi];
    SCOPED_TRACE(fx() + " " + test::dt_name(dt()) + " prompt " + std::to_string(pi) + " (" + std::to_string(p.ids.size()) +
                 " tokens)");
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
    EXPECT_LE(rel_error(out.row(p.ids.size() - 1), p.logits_last), rel_tol(p.ids.size())) << "last position";
    for (size_t t = 0; t < p.ids.size(); ++t) {
      if (!p.logits_all.empty()) EXPECT_LE(rel_error(out.row(t), p.logits_all[t]), rel_tol()) << "position " << t;
      expect_top(out.row(t), V, p.argmax_all[t], "argmax at position " + std::to_string(t));
    }
    // 2. Greedy decode, one token per step, through the paged cache (and the decode graphs):
    // HF's continuation, teacher-forced after a near-tie so one flip does not cascade.
    std::vector<float> row(out.row(out.num_rows() - 1), out.row(out.num_rows() - 1) + V);
    s.want_all_logits = false;
    for (size_t k = 0; k < p.greedy.size(); ++k) {
      expect_top(row.data(), V, p.greedy[k], "greedy step " + std::to_string(k));
      s.start_pos += static_cast<int32_t>(s.tokens.size());
      s.tokens = {p.greedy[k]};
      blocks.cover(s, bs);
      b.seqs = {s};
      st = m.forward(b, out);
      ASSERT_TRUE(st.ok()) << st.err().to_string();
      ASSERT_EQ(out.num_rows(), 1);
      row.assign(out.row(0), out.row(0) + V);
    }
  }
  EXPECT_EQ(device_allocation_count(), allocations) << "forward() must not allocate device memory";
}

TEST_P(cuda_model_fixture, chunked_prefill_and_mixed_batches_agree_with_one_shot) {
  TROUPE_REQUIRE_GPU();
  cuda_model_options o = options(/*num_kv_blocks=*/300, /*max_batch_size=*/8);
  o.max_splits = 4;
  auto model = cuda_model::create(cfg_, weights_.get(), o);
  ASSERT_TRUE(model.ok()) << model.err().to_string();
  cuda_model& m = **model;
  const uint64_t allocations = device_allocation_count();
  const int64_t V = cfg_.vocab_size, bs = m.block_seq_len();
  const auto prompts = read_reference(dir());
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
    EXPECT_LE(rel_error(last[i].data(), prompts[i].logits_last), rel_tol(prompts[i].ids.size())) << "prompt " << i;
  }
  // Then 8 decode steps of all sequences at once must reproduce each greedy continuation
  // (teacher-forced, so one near-tie does not cascade).
  for (int k = 0; k < 8; ++k) {
    step_batch b;
    for (size_t i = 0; i < prompts.size(); ++i) {
      expect_top(last[i].data(), V, prompts[i].greedy[k], "prompt " + std::to_string(i) + " step " + std::to_string(k));
      auto& s = seqs[i];
      s.start_pos += static_cast<int32_t>(s.tokens.size());
      s.tokens = {prompts[i].greedy[k]};
      s.want_logits = true;
      blocks.cover(s, bs);
      b.seqs.push_back(s);
    }
    step_logits out;
    auto st = m.forward(b, out);
    ASSERT_TRUE(st.ok()) << st.err().to_string();
    ASSERT_EQ(out.num_rows(), static_cast<int64_t>(prompts.size()));
    for (size_t i = 0; i < prompts.size(); ++i) last[i].assign(out.row(i), out.row(i) + V);
  }
  EXPECT_EQ(device_allocation_count(), allocations);
}

// Decode steps replayed from the start-up CUDA graphs (padded to the next captured batch size, some
// rows without logits) give the logits of the same steps launched eagerly, and allocate nothing:
// neither our arenas nor anything cudaMemGetInfo would see.
TEST_P(cuda_model_fixture, decode_graphs_match_eager_launches) {
  TROUPE_REQUIRE_GPU();
  cuda_model_options o = options(/*num_kv_blocks=*/600, /*max_batch_size=*/12);
  o.max_splits = 4;
  auto graphed = cuda_model::create(cfg_, weights_.get(), o);
  ASSERT_TRUE(graphed.ok()) << graphed.err().to_string();
  o.cuda_graphs = false;
  auto eager = cuda_model::create(cfg_, weights_.get(), o);
  ASSERT_TRUE(eager.ok()) << eager.err().to_string();
  EXPECT_EQ((*graphed)->graph_batch_sizes(), (std::vector<int32_t>{1, 2, 4, 8, 12}));
  EXPECT_TRUE((*eager)->graph_batch_sizes().empty());
  const int64_t V = cfg_.vocab_size, bs = (*graphed)->block_seq_len();
  const auto prompts = read_reference(dir());
  const uint64_t allocations = device_allocation_count();
  size_t free_before = 0, free_after = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_before, &total), cudaSuccess);

  // 11 sequences: the fixture prompts (repeated), prefilled together, then decoded in steps of
  // 1, 3, 5, 11 and 9 sequences (graphs 1, 4, 8, 12, 12).
  block_allocator blocks(o.num_kv_blocks);
  std::vector<seq_step> seqs(11);
  step_batch prefill;
  for (size_t i = 0; i < seqs.size(); ++i) {
    seqs[i].seq_id = static_cast<int64_t>(i);
    const auto& ids = prompts[i % prompts.size()].ids;
    seqs[i].tokens.assign(ids.begin(), ids.begin() + std::min<size_t>(ids.size(), 40));
    blocks.cover(seqs[i], bs);
    prefill.seqs.push_back(seqs[i]);
  }
  step_logits g_out, e_out;
  ASSERT_TRUE((*graphed)->forward(prefill, g_out).ok());
  ASSERT_TRUE((*eager)->forward(prefill, e_out).ok());
  for (auto& s : seqs) s.start_pos += static_cast<int32_t>(s.tokens.size());
  int step = 0;
  for (int n : {1, 3, 5, 11, 9, 1, 11}) {
    step_batch b;
    for (int i = 0; i < n; ++i) {
      seq_step& s = seqs[static_cast<size_t>(i)];
      s.tokens = {static_cast<int32_t>((step * 31 + i * 7 + 3) % V)};
      s.want_logits = (i + step) % 4 != 1;  // some rows without logits
      blocks.cover(s, bs);
      b.seqs.push_back(s);
    }
    auto gs = (*graphed)->forward(b, g_out);
    ASSERT_TRUE(gs.ok()) << gs.err().to_string();
    auto es = (*eager)->forward(b, e_out);
    ASSERT_TRUE(es.ok()) << es.err().to_string();
    ASSERT_EQ(g_out.row_seq, e_out.row_seq) << "step " << step;
    for (int64_t r = 0; r < g_out.num_rows(); ++r) {
      const std::vector<float> want(e_out.row(r), e_out.row(r) + V);
      EXPECT_LE(rel_error(g_out.row(r), want), 1e-3) << "step " << step << " row " << r;
      if (top2_margin(want.data(), V) > 0.05f)
        EXPECT_EQ(argmax(g_out.row(r), V), argmax(want.data(), V)) << "step " << step << " row " << r;
    }
    for (int i = 0; i < n; ++i) seqs[static_cast<size_t>(i)].start_pos += 1;
    ++step;
  }
  ASSERT_EQ(cudaMemGetInfo(&free_after, &total), cudaSuccess);
  EXPECT_EQ(free_after, free_before) << "decode steps took device memory";
  EXPECT_EQ(device_allocation_count(), allocations);
}

// Serving: forward_sampled lands the sampled rows in pinned memory and samples them there; the
// tokens and logprobs equal the CPU sampler's on the rows forward() returns for the same step
// (decode graph and eager prefill alike), and the reply carries no rows.
TEST_P(cuda_model_fixture, forward_sampled_equals_the_cpu_sampler_on_the_same_rows) {
  TROUPE_REQUIRE_GPU();
  auto model = cuda_model::create(cfg_, weights_.get(), options(/*num_kv_blocks=*/300, /*max_batch_size=*/8));
  ASSERT_TRUE(model.ok()) << model.err().to_string();
  cuda_model& m = **model;
  const int64_t V = cfg_.vocab_size, bs = m.block_seq_len();
  const auto prompts = read_reference(dir());
  block_allocator blocks(m.num_kv_blocks());
  sampling_params p;
  p.temperature = 0.8f;
  p.top_p = 0.9f;
  p.seed = 21;
  p.logprobs = 3;
  std::vector<std::shared_ptr<sampler>> exec, host;
  step_batch b;
  for (size_t i = 0; i < 3 && i < prompts.size(); ++i) {
    seq_step s;
    s.seq_id = static_cast<int64_t>(i);
    s.tokens = prompts[i].ids;
    blocks.cover(s, bs);
    exec.push_back(std::make_shared<sampler>(p, s.tokens));
    host.push_back(std::make_shared<sampler>(p, s.tokens));
    s.sampling = exec.back();
    b.seqs.push_back(s);
  }
  step_logits rows, reply, reference;
  for (int stepno = 0; stepno < 4; ++stepno) {  // a prefill step, then decode steps (graphs)
    SCOPED_TRACE("step " + std::to_string(stepno));
    ASSERT_TRUE(m.forward(b, reference).ok());
    reply = {};
    ASSERT_TRUE(m.forward_sampled(b, rows, reply).ok());
    EXPECT_EQ(reply.num_rows(), 0);
    ASSERT_EQ(reply.sampled.size(), b.seqs.size());
    for (size_t i = 0; i < b.seqs.size(); ++i) {
      std::vector<float> row(reference.row(static_cast<int64_t>(i)), reference.row(static_cast<int64_t>(i)) + V);
      const sampled_token want = host[i]->sample(row);
      EXPECT_EQ(reply.sampled[i].token.token, want.token);
      EXPECT_NEAR(reply.sampled[i].token.logprob, want.logprob, 1e-5);
      seq_step& s = b.seqs[i];
      s.start_pos += static_cast<int32_t>(s.tokens.size());
      s.tokens = {reply.sampled[i].token.token};
      blocks.cover(s, bs);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(fixtures, cuda_model_fixture,
                         ::testing::Combine(::testing::Values("tiny-llama", "tiny-llama-bf16", "tiny-qwen2",
                                                              "tiny-qwen2-bf16", "tiny-gemma3", "tiny-gemma3-bf16"),
                                            ::testing::Values(kernel_dtype::bf16, kernel_dtype::f16)),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + test::dt_name(std::get<1>(info.param));
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

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
  o.num_kv_blocks = 2400;  // 99 sequences of up to 700 tokens: 99 x 22 blocks
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
