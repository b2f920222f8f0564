// cuda_model::forward_sampled sampling on the device: a batch mixing every knob (greedy, seeded
// temperature with top_k / top_p / min_p, penalties, logit_bias, min_tokens, raw and processed
// logprobs) and one constrained sequence (the pinned host path) answers as the CPU sampler does on
// the rows forward() returns, over a prefill and decode steps (graphs), allocating nothing.
#include <memory>
#include <random>

#include "gpu_test_util.h"
#include "kernels/cuda_model.h"
#include "kernels/device_memory.h"
#include "runtime/sampler.h"
#include "runtime/token_constraint.h"

namespace troupe {
namespace {

model_config small_config() {
  model_config c;
  c.architecture = "llama";
  c.vocab_size = 1003;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 64;
  c.max_position_embeddings = 1024;
  return c;
}

// Allows even token ids only.
class even_tokens final : public token_constraint {
 public:
  void fill_mask(token_mask& mask) override {
    for (int32_t t = 0; t < static_cast<int32_t>(mask.words.size() * 64); t += 2) mask.set(t);
  }
  bool accept(int32_t token) override { return token % 2 == 0; }
  bool is_terminated() const override { return false; }
  std::unique_ptr<token_constraint> clone() const override { return std::make_unique<even_tokens>(); }
};

sampling_params knobs(int i) {
  sampling_params p;
  p.seed = 100 + static_cast<uint64_t>(i);
  p.max_tokens = 16;
  switch (i % 6) {
    case 0: p.temperature = 0.0f; break;
    case 1: p.temperature = 0.9f, p.top_k = 20, p.logprobs = 2; break;
    case 2: p.temperature = 1.2f, p.top_p = 0.8f, p.min_p = 0.02f, p.logprobs = 0; break;
    case 3: p.temperature = 0.7f, p.repetition_penalty = 1.3f, p.frequency_penalty = 0.5f, p.presence_penalty = 0.2f; break;
    case 4:
      p.temperature = 0.0f, p.logit_bias = {{5, 3.0f}, {9, -100.0f}}, p.logprobs = 4;
      p.lp_mode = logprobs_mode::processed;
      break;
    default: p.temperature = 1.0f, p.min_tokens = 3, p.stop_token_ids = {7}, p.logprobs = 1; break;
  }
  return p;
}

TEST(cuda_model_sampling, every_knob_on_the_device_and_a_constraint_on_the_host_match_the_cpu_sampler) {
  TROUPE_REQUIRE_GPU();
  cuda_model_options o;
  o.dummy_weights = true;
  o.block_seq_len = 16;
  o.num_kv_blocks = 400;
  o.max_batch_size = 19;
  o.max_prefill_token_num = 512;
  auto model = cuda_model::create(small_config(), nullptr, o);
  ASSERT_TRUE(model.ok()) << model.err().to_string();
  cuda_model& m = **model;
  ASSERT_TRUE(m.samples_on_device());
  const uint64_t allocations = device_allocation_count();
  const int64_t V = 1003, bs = m.block_seq_len();
  std::mt19937 rng(4);
  step_batch b;
  std::vector<std::shared_ptr<sampler>> host;
  int32_t next_block = 0;
  auto cover = [&](seq_step& s) {
    while (static_cast<int64_t>(s.block_table.size()) * bs < s.start_pos + static_cast<int64_t>(s.tokens.size()))
      s.block_table.push_back(next_block++);
  };
  for (int i = 0; i < 19; ++i) {
    seq_step s;
    s.seq_id = i;
    for (int t = 0; t < 5 + i; ++t) s.tokens.push_back(static_cast<int32_t>(rng() % V));
    cover(s);
    const sampling_params p = knobs(i);
    const std::vector<int32_t> eos = {11};
    s.sampling = std::make_shared<sampler>(p, s.tokens, eos);
    host.push_back(std::make_shared<sampler>(p, s.tokens, eos));
    if (i == 13) {  // the host path, beside device rows
      s.sampling->set_constraint(std::make_unique<even_tokens>());
      host.back()->set_constraint(std::make_unique<even_tokens>());
    }
    b.seqs.push_back(std::move(s));
  }
  step_logits rows, reply, reference;
  for (int step = 0; step < 5; ++step) {  // a prefill, then decode steps (graphs)
    SCOPED_TRACE("step " + std::to_string(step));
    ASSERT_TRUE(m.forward(b, reference).ok());
    reply = {};
    const status st = m.forward_sampled(b, rows, reply);
    ASSERT_TRUE(st.ok()) << st.err().to_string();
    EXPECT_EQ(reply.num_rows(), 0);
    ASSERT_EQ(reply.sampled.size(), b.seqs.size());
    for (size_t i = 0; i < b.seqs.size(); ++i) {
      SCOPED_TRACE("seq " + std::to_string(i));
      std::vector<float> row(reference.row(static_cast<int64_t>(i)), reference.row(static_cast<int64_t>(i)) + V);
      const sampled_token want = host[i]->sample(row);
      const sampled_seq& got = reply.sampled[i];
      ASSERT_EQ(got.seq, static_cast<int32_t>(i));
      ASSERT_EQ(got.token.token, want.token);
      if (i == 13) EXPECT_EQ(got.token.token % 2, 0);
      if (!std::isinf(want.logprob)) EXPECT_NEAR(got.token.logprob, want.logprob, 1e-4);
      ASSERT_EQ(got.token.top.size(), want.top.size());
      for (size_t j = 0; j < want.top.size(); ++j) EXPECT_EQ(got.token.top[j].token, want.top[j].token);
      EXPECT_EQ(b.seqs[i].sampling->num_generated(), host[i]->num_generated());
      seq_step& s = b.seqs[i];
      s.start_pos += static_cast<int32_t>(s.tokens.size());
      s.tokens = {got.token.token};
      cover(s);
    }
  }
  EXPECT_EQ(device_allocation_count(), allocations) << "sampling took device memory after start-up";
}

}  // namespace
}  // namespace troupe
