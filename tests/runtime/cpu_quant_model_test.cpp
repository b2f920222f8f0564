// The default model (SmolLM2-135M, Q4_1 + Q8_0 GGUF) held in its file's formats: it holds exactly
// the file's tensor bytes, and its logits are bit-identical to the same file widened to float32 at
// load (the exact path), for a prompt and for decode steps batched with another sequence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <filesystem>

#include "config/paths.h"
#include "runtime/cpu_model.h"
#include "runtime/gguf_file.h"
#include "runtime/gguf_model.h"
#include "runtime/model_weights.h"

namespace troupe {
namespace {

std::unique_ptr<cpu_model> load(const model_config& cfg, const weight_source& src, const weight_load_options& opts,
                                int64_t& weight_bytes, weight_dtype kv = weight_dtype::f32) {
  auto w = load_model_weights(cfg, src, opts);
  EXPECT_TRUE(w.ok()) << w.err().message;
  if (!w.ok()) return nullptr;
  weight_bytes = w->num_bytes();
  cpu_model_options o{32, 16, 2};
  o.kv_dtype = kv;
  auto m = cpu_model::create(cfg, std::move(*w), o);
  EXPECT_TRUE(m.ok()) << m.err().message;
  return m.ok() ? std::move(*m) : nullptr;
}

// Logits of every step: a 37-token prompt alone, then 3 decode steps batched with a second sequence.
std::vector<float> run(cpu_model& m, bool with_other = true) {
  std::vector<float> all;
  step_batch b;
  seq_step a;
  a.seq_id = 1;
  for (int i = 0; i < 37; ++i) a.tokens.push_back((i * 7919 + 11) % 49152);
  a.want_all_logits = true;
  for (int i = 0; i < 8; ++i) a.block_table.push_back(i);
  b.seqs.push_back(a);
  step_logits out;
  EXPECT_TRUE(m.forward(b, out).ok());
  all.insert(all.end(), out.data.begin(), out.data.end());
  seq_step other;
  other.seq_id = 2;
  other.tokens = {5, 6, 7};
  for (int i = 8; i < 16; ++i) other.block_table.push_back(i);
  for (int step = 0; step < 3; ++step) {
    b.seqs[0].start_pos += static_cast<int32_t>(b.seqs[0].tokens.size());
    b.seqs[0].tokens = {100 + step};
    b.seqs[0].want_all_logits = false;
    if (step > 0) {
      other.start_pos += static_cast<int32_t>(other.tokens.size());
      other.tokens = {200 + step};
    }
    b.seqs.resize(1);
    if (with_other) b.seqs.push_back(other);
    EXPECT_TRUE(m.forward(b, out).ok());
    all.insert(all.end(), out.data.begin(), out.data.begin() + out.vocab_size);  // sequence 1's row
  }
  return all;
}

TEST(cpu_quant_model, default_model_holds_file_bytes_and_matches_float32_bit_for_bit) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not installed at " << path;
  auto cfg = read_gguf_model_config(path);
  ASSERT_TRUE(cfg.ok());
  auto src = open_gguf_weights(path);
  ASSERT_TRUE(src.ok());
  int64_t q_bytes = 0, f_bytes = 0;
  auto q = load(*cfg, **src, {}, q_bytes);
  auto f = load(*cfg, **src, weight_load_options{weight_dtype::f32}, f_bytes);
  ASSERT_TRUE(q && f);
  // Every tensor of this file is used once (tied embedding), and every fused matrix's parts share a
  // format: the bytes held are the file's tensor bytes.
  auto file = gguf_file::open(path);
  ASSERT_TRUE(file.ok());
  int64_t file_bytes = 0;
  for (const auto& t : (*file)->tensors()) file_bytes += static_cast<int64_t>(t.num_bytes);
  EXPECT_EQ(q_bytes, file_bytes);
  EXPECT_EQ(static_cast<int64_t>(q->memory().weights_bytes), file_bytes);
  EXPECT_LT(q_bytes * 5, f_bytes);
  const std::vector<float> lq = run(*q), lf = run(*f);
  ASSERT_EQ(lq.size(), lf.size());
  EXPECT_EQ(0, std::memcmp(lq.data(), lf.data(), lq.size() * sizeof(float)));
}

// log-softmax of each [vocab] row.
std::vector<double> log_probs(const std::vector<float>& logits, int64_t vocab) {
  std::vector<double> out(logits.size());
  for (size_t r = 0; r < logits.size() / vocab; ++r) {
    const float* row = logits.data() + r * vocab;
    double mx = row[0], sum = 0;
    for (int64_t i = 0; i < vocab; ++i) mx = std::max<double>(mx, row[i]);
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - mx);
    for (int64_t i = 0; i < vocab; ++i) out[r * vocab + i] = row[i] - mx - std::log(sum);
  }
  return out;
}

TEST(cpu_quant_model, float16_kv_cache_is_half_the_bytes_batch_invariant_and_within_1e3_nats) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not installed at " << path;
  auto cfg = read_gguf_model_config(path);
  ASSERT_TRUE(cfg.ok());
  auto src = open_gguf_weights(path);
  ASSERT_TRUE(src.ok());
  int64_t bytes = 0;
  auto f32 = load(*cfg, **src, {}, bytes, weight_dtype::f32);
  auto f16 = load(*cfg, **src, {}, bytes, weight_dtype::f16);
  ASSERT_TRUE(f32 && f16);
  EXPECT_EQ(f16->kv_pool_bytes() * 2, f32->kv_pool_bytes());
  EXPECT_EQ(static_cast<int64_t>(f16->memory().kv_bytes), f16->kv_pool_bytes());
  const std::vector<float> a = run(*f16), alone = run(*f16, false), ref = run(*f32);
  ASSERT_EQ(a.size(), alone.size());
  EXPECT_EQ(0, std::memcmp(a.data(), alone.data(), a.size() * sizeof(float)));  // batch invariance
  const int64_t vocab = cfg->vocab_size;
  const auto la = log_probs(a, vocab), lr = log_probs(ref, vocab);
  double sum = 0;
  const size_t rows = a.size() / vocab;
  for (size_t r = 0; r < rows; ++r) {
    const double* row = lr.data() + r * vocab;
    const int64_t top = std::max_element(row, row + vocab) - row;
    sum += std::abs(la[r * vocab + top] - row[top]);
    std::vector<double> sorted(row, row + vocab);
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
    const double* arow = la.data() + r * vocab;
    if (sorted[0] - sorted[1] > 1e-2) EXPECT_EQ(std::max_element(arow, arow + vocab) - arow, top) << "row " << r;
  }
  EXPECT_LE(sum / rows, 1e-3);
}

}  // namespace
}  // namespace troupe
