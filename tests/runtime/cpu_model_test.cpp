// cpu_model against Hugging Face transformers reference outputs (fixtures/tiny-*): logits at every
// position, argmax and 24-token greedy continuations; and batch invariance: a sequence's logits are
// bit-identical whole vs chunked vs token by token, alone vs batched, 1 thread vs 2.
#include "runtime/cpu_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/cpu_kernels.h"
#include "runtime/model_config.h"
#include "runtime/model_weights.h"
#include "runtime/weight_source.h"

namespace troupe {
namespace {

using json = nlohmann::json;
constexpr int64_t kBlockLen = 16;
constexpr int64_t kNumBlocks = 160;

struct prompt_ref {
  std::vector<int32_t> input_ids;
  std::vector<std::vector<float>> logits_all;  // [n, vocab] (some prompts only)
  std::vector<float> logits_last;              // [vocab]
  std::vector<int32_t> argmax_all;             // [n]
  std::vector<int32_t> greedy;                 // [24]
};

std::vector<prompt_ref> load_reference(const std::string& dir) {
  std::ifstream in(dir + "/reference.json");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str());
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

std::unique_ptr<cpu_model> load_model(const std::string& dir, int num_threads = 2,
                                      const weight_load_options& opts = {}) {
  auto cfg = read_model_config(dir);
  EXPECT_TRUE(cfg.ok()) << cfg.err().to_string();
  auto src = open_weights(dir);
  EXPECT_TRUE(src.ok()) << src.err().to_string();
  auto w = load_model_weights(*cfg, **src, opts);
  EXPECT_TRUE(w.ok()) << w.err().to_string();
  auto m = cpu_model::create(*cfg, std::move(*w), {kNumBlocks, kBlockLen, num_threads});
  EXPECT_TRUE(m.ok()) << m.err().to_string();
  return std::move(*m);
}

// Hands out block ids in a scrambled order so block tables are never contiguous.
class block_lender {
 public:
  block_lender() : ids_(kNumBlocks) {
    std::iota(ids_.begin(), ids_.end(), 0);
    std::shuffle(ids_.begin(), ids_.end(), std::mt19937(1234));
  }
  std::vector<int32_t> lease(int64_t num_tokens) {
    std::vector<int32_t> t;
    for (int64_t i = 0; i < (num_tokens + kBlockLen - 1) / kBlockLen; ++i) t.push_back(ids_.at(next_++));
    return t;
  }

 private:
  std::vector<int32_t> ids_;
  size_t next_ = 0;
};

double rel_error(const float* out, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (out[i] - ref[i]) * static_cast<double>(out[i] - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

int32_t argmax(const float* row, int64_t n) { return static_cast<int32_t>(std::max_element(row, row + n) - row); }

seq_step make_step(int64_t id, const std::vector<int32_t>& all, size_t begin, size_t end,
                   const std::vector<int32_t>& table, bool all_logits) {
  seq_step s;
  s.seq_id = id;
  s.tokens.assign(all.begin() + begin, all.begin() + end);
  s.start_pos = static_cast<int32_t>(begin);
  s.block_table = table;
  s.want_all_logits = all_logits;
  return s;
}

// Logits [n, vocab] of every position of `tokens`, fed in chunks of the given sizes (the last chunk
// takes the rest), alone in each step.
std::vector<float> run_chunked(cpu_model& m, const std::vector<int32_t>& tokens, const std::vector<size_t>& chunks,
                               const std::vector<int32_t>& table) {
  std::vector<float> all;
  size_t pos = 0, c = 0;
  while (pos < tokens.size()) {
    size_t n = c < chunks.size() ? chunks[c++] : tokens.size() - pos;
    n = std::min(n, tokens.size() - pos);
    step_batch b;
    b.seqs.push_back(make_step(7, tokens, pos, pos + n, table, true));
    step_logits out;
    auto st = m.forward(b, out);
    EXPECT_TRUE(st.ok()) << st.err().to_string();
    all.insert(all.end(), out.data.begin(), out.data.end());
    pos += n;
  }
  return all;
}

class cpu_model_fixture : public ::testing::TestWithParam<std::string> {
 protected:
  // The shared fixtures, or the ones committed under tests/data/fixtures (Gemma 3).
  std::string dir() const {
    const std::string local = std::string(TROUPE_TEST_DATA_DIR) + "/fixtures/" + GetParam();
    return std::filesystem::exists(local) ? local : std::string(TROUPE_FIXTURES_DIR) + "/" + GetParam();
  }
};

TEST_P(cpu_model_fixture, matches_reference_logits_argmax_and_greedy_continuation) {
  auto m = load_model(dir());
  const auto refs = load_reference(dir());
  const int64_t vocab = m->config().vocab_size;
  block_lender lender;
  for (const auto& r : refs) {
    const int64_t n = static_cast<int64_t>(r.input_ids.size());
    const auto table = lender.lease(n + 24);
    step_batch b;
    b.seqs.push_back(make_step(1, r.input_ids, 0, r.input_ids.size(), table, true));
    step_logits out;
    ASSERT_TRUE(m->forward(b, out).ok());
    ASSERT_EQ(out.num_rows(), n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(argmax(out.row(i), vocab), r.argmax_all[i]) << "prompt of " << n << " tokens, position " << i;
      if (!r.logits_all.empty()) EXPECT_LT(rel_error(out.row(i), r.logits_all[i]), 1e-4) << "position " << i;
    }
    EXPECT_LT(rel_error(out.row(n - 1), r.logits_last), 1e-4) << "prompt of " << n << " tokens";
    // Greedy decode, one token per step.
    std::vector<int32_t> seq = r.input_ids, generated;
    int32_t next = argmax(out.row(n - 1), vocab);
    for (int i = 0; i < 24; ++i) {
      generated.push_back(next);
      seq.push_back(next);
      step_batch d;
      d.seqs.push_back(make_step(1, seq, seq.size() - 1, seq.size(), table, false));
      ASSERT_TRUE(m->forward(d, out).ok());
      ASSERT_EQ(out.num_rows(), 1);
      next = argmax(out.row(0), vocab);
    }
    EXPECT_EQ(generated, r.greedy) << "prompt of " << n << " tokens";
  }
}

TEST_P(cpu_model_fixture, batched_prompts_of_different_lengths_decode_together) {
  auto m = load_model(dir());
  const auto refs = load_reference(dir());
  const int64_t vocab = m->config().vocab_size;
  block_lender lender;
  std::vector<std::vector<int32_t>> seqs, tables, generated(refs.size());
  step_batch b;
  for (size_t i = 0; i < refs.size(); ++i) {
    seqs.push_back(refs[i].input_ids);
    tables.push_back(lender.lease(static_cast<int64_t>(seqs[i].size()) + 24));
    b.seqs.push_back(make_step(static_cast<int64_t>(i), seqs[i], 0, seqs[i].size(), tables[i], false));
    b.seqs.back().want_logits = true;
  }
  step_logits out;
  for (int step = 0; step <= 24; ++step) {
    ASSERT_TRUE(m->forward(b, out).ok());
    ASSERT_EQ(out.num_rows(), static_cast<int64_t>(refs.size()));
    if (step == 0)
      for (size_t i = 0; i < refs.size(); ++i) EXPECT_LT(rel_error(out.row(i), refs[i].logits_last), 1e-4);
    if (step == 24) break;
    b.seqs.clear();
    for (size_t i = 0; i < refs.size(); ++i) {
      ASSERT_EQ(out.row_seq[i], static_cast<int32_t>(i));
      const int32_t next = argmax(out.row(i), vocab);
      generated[i].push_back(next);
      seqs[i].push_back(next);
      b.seqs.push_back(make_step(static_cast<int64_t>(i), seqs[i], seqs[i].size() - 1, seqs[i].size(), tables[i], false));
    }
  }
  for (size_t i = 0; i < refs.size(); ++i) EXPECT_EQ(generated[i], refs[i].greedy) << "prompt " << i;
}

TEST_P(cpu_model_fixture, chunked_and_token_by_token_prefill_are_bit_identical) {
  auto m = load_model(dir());
  const auto refs = load_reference(dir());
  const auto& prompt = refs.back().input_ids;  // the longest (300 tokens): crosses many blocks
  block_lender lender;
  const auto whole = run_chunked(*m, prompt, {prompt.size()}, lender.lease(prompt.size()));
  const auto chunked = run_chunked(*m, prompt, {7, 13}, lender.lease(prompt.size()));
  const auto odd = run_chunked(*m, prompt, {1, 15, 16, 17, 33, 64}, lender.lease(prompt.size()));
  const auto single = run_chunked(*m, prompt, std::vector<size_t>(prompt.size(), 1), lender.lease(prompt.size()));
  ASSERT_EQ(whole.size(), prompt.size() * static_cast<size_t>(m->config().vocab_size));
  ASSERT_EQ(chunked.size(), whole.size());
  ASSERT_EQ(odd.size(), whole.size());
  ASSERT_EQ(single.size(), whole.size());
  EXPECT_EQ(0, std::memcmp(whole.data(), chunked.data(), whole.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(whole.data(), odd.data(), whole.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(whole.data(), single.data(), whole.size() * sizeof(float)));
}

TEST_P(cpu_model_fixture, logits_are_bit_identical_alone_or_batched_with_others) {
  auto m = load_model(dir());
  const auto refs = load_reference(dir());
  const auto& a = refs[2].input_ids;  // 33 tokens
  block_lender lender;
  const auto alone = run_chunked(*m, a, {a.size()}, lender.lease(a.size()));
  // The same prompt beside a long prefill and a few decode-like sequences, in the middle of the batch.
  const auto& other = refs.back().input_ids;
  step_batch b;
  const auto t_other = lender.lease(other.size());
  const auto t_one = lender.lease(7);
  b.seqs.push_back(make_step(0, other, 0, other.size(), t_other, false));
  b.seqs.push_back(make_step(1, a, 0, a.size(), lender.lease(a.size()), true));
  b.seqs.push_back(make_step(2, refs[1].input_ids, 0, 7, t_one, true));
  step_logits out;
  ASSERT_TRUE(m->forward(b, out).ok());
  const int64_t vocab = m->config().vocab_size;
  ASSERT_EQ(out.num_rows(), static_cast<int64_t>(1 + a.size() + 7));
  ASSERT_EQ(out.row_seq[0], 0);
  ASSERT_EQ(out.row_seq[1], 1);
  EXPECT_EQ(0, std::memcmp(alone.data(), out.row(1), a.size() * vocab * sizeof(float)));
  // A decode step of `a` beside a prefill chunk of another sequence, vs alone.
  std::vector<int32_t> a_next = a;
  a_next.push_back(5);
  const auto t_a2 = lender.lease(a_next.size());
  const auto t_a3 = lender.lease(a_next.size());
  run_chunked(*m, a, {a.size()}, t_a2);
  run_chunked(*m, a, {a.size()}, t_a3);
  step_batch solo, mixed;
  solo.seqs.push_back(make_step(3, a_next, a.size(), a_next.size(), t_a2, false));
  mixed.seqs.push_back(make_step(9, other, 0, 40, lender.lease(40), true));
  mixed.seqs.push_back(make_step(4, a_next, a.size(), a_next.size(), t_a3, false));
  step_logits o1, o2;
  ASSERT_TRUE(m->forward(solo, o1).ok());
  ASSERT_TRUE(m->forward(mixed, o2).ok());
  ASSERT_EQ(o2.num_rows(), 41);
  EXPECT_EQ(0, std::memcmp(o1.row(0), o2.row(40), vocab * sizeof(float)));
}

TEST_P(cpu_model_fixture, thread_count_does_not_change_logits) {
  auto m1 = load_model(dir(), 1);
  auto m2 = load_model(dir(), 2);
  const auto refs = load_reference(dir());
  const auto& p = refs[2].input_ids;
  block_lender lender;
  const auto table = lender.lease(p.size());
  const auto a = run_chunked(*m1, p, {p.size()}, table);
  const auto b = run_chunked(*m2, p, {p.size()}, table);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(fixtures, cpu_model_fixture,
                         ::testing::Values("tiny-llama", "tiny-llama-bf16", "tiny-qwen2", "tiny-qwen2-bf16",
                                           "tiny-gemma3", "tiny-gemma3-bf16"),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

TEST(cpu_model, bf16_checkpoints_stored_as_bf16_match_float32_storage_bit_for_bit) {
  for (const char* name : {"tiny-llama-bf16", "tiny-qwen2-bf16"}) {
    const std::string dir = std::string(TROUPE_FIXTURES_DIR) + "/" + name;
    auto as_bf16 = load_model(dir);  // auto: BF16 tensors stay bf16
    auto as_f32 = load_model(dir, 2, weight_load_options{weight_dtype::f32});
    const auto refs = load_reference(dir);
    const auto& p = refs[2].input_ids;
    block_lender lender;
    const auto table = lender.lease(p.size());
    const auto a = run_chunked(*as_bf16, p, {p.size()}, table);
    const auto b = run_chunked(*as_f32, p, {p.size()}, table);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << name;
  }
}

TEST(cpu_model, float32_checkpoint_narrowed_to_16_bits_stays_close) {
  const std::string dir = std::string(TROUPE_FIXTURES_DIR) + "/tiny-llama";
  const auto refs = load_reference(dir);
  const auto& p = refs[2].input_ids;
  for (weight_dtype d : {weight_dtype::bf16, weight_dtype::f16}) {
    auto m = load_model(dir, 2, weight_load_options{d});
    block_lender lender;
    const auto out = run_chunked(*m, p, {p.size()}, lender.lease(p.size()));
    const int64_t vocab = m->config().vocab_size;
    EXPECT_LT(rel_error(out.data() + (p.size() - 1) * vocab, refs[2].logits_last), d == weight_dtype::f16 ? 2e-3 : 2e-2)
        << weight_dtype_name(d);
  }
}

TEST(cpu_model, rope_inv_freq_follows_transformers_scaling_rules) {
  rope_config r;
  r.theta = 500000.0;
  auto plain = rope_inv_freq(r, 128);
  ASSERT_EQ(plain.size(), 64u);
  EXPECT_FLOAT_EQ(plain[0], 1.0f);
  EXPECT_FLOAT_EQ(plain[10], static_cast<float>(std::pow(500000.0, -20.0 / 128)));
  r.type = "linear";
  r.factor = 4.0;
  EXPECT_FLOAT_EQ(rope_inv_freq(r, 128)[10], plain[10] / 4.0f);
  // Llama 3.1: factor 8, low 1, high 4, original context 8192.
  r.type = "llama3";
  r.factor = 8.0;
  auto l3 = rope_inv_freq(r, 128);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double wavelen = 2 * M_PI / plain[i];
    double want = plain[i];
    if (wavelen > 8192.0) want = plain[i] / 8.0;                    // long: scaled down
    else if (wavelen >= 2048.0) {                                   // band: interpolated
      const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      want = (1 - smooth) * plain[i] / 8.0 + smooth * plain[i];
    }
    EXPECT_NEAR(l3[i], want, 1e-6 * want) << "frequency " << i;
  }
  // float32 whatever the checkpoint's dtype (no rounding to bf16): the value is the float32 one,
  // which bf16 cannot hold exactly.
  EXPECT_NE(plain[10], bf16_bits_to_f32(f32_to_bf16_bits(plain[10])));
}

// With one layer and a sliding window of 4, the logits at position p depend only on tokens
// p-3..p (rotary is relative), so two prompts that differ only before the window agree.
TEST(cpu_model, sliding_window_limits_attention_to_the_last_positions) {
  model_config c;
  c.name = "window";
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 16;
  c.tie_word_embeddings = true;
  const std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, b = {11, 12, 13, 14, 15, 16, 7, 8, 9, 10};
  auto last_logits = [&](int64_t window, const std::vector<int32_t>& tokens) {
    model_config cw = c;
    cw.sliding_window = window;
    auto m = cpu_model::create(cw, std::move(*make_dummy_weights(cw, 5)), {4, 16, 1});
    EXPECT_TRUE(m.ok());
    step_batch batch;
    batch.seqs.push_back(make_step(0, tokens, 0, tokens.size(), {2}, false));
    step_logits out;
    EXPECT_TRUE((*m)->forward(batch, out).ok());
    return out.data;
  };
  const auto wa = last_logits(4, a), wb = last_logits(4, b);
  EXPECT_LT(rel_error(wa.data(), wb), 1e-5);
  const auto fa = last_logits(0, a), fb = last_logits(0, b);
  EXPECT_GT(rel_error(fa.data(), fb), 1e-3);
}

TEST(cpu_model, rejects_bad_steps_with_clear_errors) {
  auto m = load_model(std::string(TROUPE_FIXTURES_DIR) + "/tiny-llama");
  step_logits out;
  step_batch b;
  b.seqs.push_back(make_step(5, {1, 2, 3}, 0, 3, {}, false));
  auto st = m->forward(b, out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.err().code, errc::invalid_argument);
  EXPECT_NE(st.err().message.find("seq 5"), std::string::npos) << st.err().message;
  b.seqs[0].block_table = {static_cast<int32_t>(kNumBlocks)};
  EXPECT_EQ(m->forward(b, out).err().code, errc::invalid_argument);
  b.seqs[0].block_table = {0};
  b.seqs[0].tokens[1] = 100000;
  EXPECT_EQ(m->forward(b, out).err().code, errc::invalid_argument);
}

TEST(cpu_model, dummy_weights_are_seeded_and_run) {
  model_config c;
  c.name = "dummy";
  c.vocab_size = 300;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.tie_word_embeddings = true;
  c.rope.type = "llama3";
  c.rope.factor = 8.0;
  c.rope.original_max_position_embeddings = 64;
  weight_load_options seeded;
  seeded.seed = 3;
  auto w1 = load_model_weights(c, "", load_format::dummy, seeded), w2 = make_dummy_weights(c, 3),
       w3 = make_dummy_weights(c, 4);
  ASSERT_TRUE(w1.ok() && w2.ok() && w3.ok());
  EXPECT_EQ(w1->layers[1].w_down.f32, w2->layers[1].w_down.f32);
  EXPECT_NE(w1->layers[1].w_down.f32, w3->layers[1].w_down.f32);
  auto m = cpu_model::create(c, std::move(*w1), {8, 16, 2});
  ASSERT_TRUE(m.ok()) << m.err().to_string();
  step_batch b;
  b.seqs.push_back(make_step(0, {1, 2, 3, 4, 5}, 0, 5, {6, 2}, true));
  step_logits out;
  ASSERT_TRUE((*m)->forward(b, out).ok());
  ASSERT_EQ(out.num_rows(), 5);
  for (float v : out.data) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace troupe
