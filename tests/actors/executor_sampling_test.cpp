// The executor samples where the logits are: a serving step's reply carries sampled tokens and no
// vocab rows; with tensor parallelism only rank 0 runs the samplers (once); a step that crossed a
// process boundary arrives without its samplers and gets its rows back, as before.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/executor_actor.h"
#include "runtime/cpu_comm.h"
#include "runtime/sampler.h"
#include "runtime/tensor_parallel.h"
#include "support/fixture_model.h"
#include "support/message_system.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

using system_fixture = testing::message_system;

sampling_params seeded() {
  sampling_params p;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  p.seed = 5;
  p.logprobs = 2;
  return p;
}

// Two prompts of the fixture as one prefill step; samplers attached when `samplers` is given.
step_batch prefill_batch(const std::vector<std::shared_ptr<sampler>>& samplers) {
  const auto prompts = testing::fixture_prompts("tiny-llama");
  step_batch b;
  b.step_id = 1;
  for (size_t i = 0; i < 2; ++i) {
    seq_step s;
    s.seq_id = static_cast<int64_t>(i + 1);
    s.tokens = prompts[i].input_ids;
    for (int32_t blk = 0; blk < 4; ++blk) s.block_table.push_back(static_cast<int32_t>(i * 4 + blk));
    if (i < samplers.size()) s.sampling = samplers[i];
    b.seqs.push_back(s);
  }
  return b;
}

step_logits step(caf::actor_system& sys, const executor_actor& e, const step_batch& b) {
  caf::scoped_actor self{sys};
  step_logits out;
  self->request(e, 30s, step_atom_v, b).receive([&](step_logits& l) { out = std::move(l); },
                                                 [&](caf::error& err) { ADD_FAILURE() << caf::to_string(err); });
  return out;
}

TEST(executor_sampling, a_serving_step_reply_carries_tokens_and_no_vocab_rows) {
  system_fixture f;
  auto model = testing::fixture_backend("tiny-llama", 16, 16);
  std::vector<std::shared_ptr<sampler>> exec, host;
  for (int i = 0; i < 2; ++i) {
    exec.push_back(std::make_shared<sampler>(seeded(), std::vector<int32_t>{}));
    host.push_back(std::make_shared<sampler>(seeded(), std::vector<int32_t>{}));
  }
  const step_batch b = prefill_batch(exec);
  step_logits reference;  // the rows the old path shipped to the scheduler
  ASSERT_TRUE(model->forward(b, reference).ok());
  ASSERT_EQ(reference.num_rows(), 2);

  auto e = spawn_executor(*f.sys, model);
  const step_logits reply = step(*f.sys, e, b);
  EXPECT_EQ(reply.num_rows(), 0);
  EXPECT_TRUE(reply.data.empty()) << "no B x vocab rows leave the executor";
  EXPECT_TRUE(reply.row_seq.empty());
  ASSERT_EQ(reply.sampled.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    std::vector<float> row(reference.row(static_cast<int64_t>(i)),
                           reference.row(static_cast<int64_t>(i)) + reference.vocab_size);
    const sampled_token want = host[i]->sample(row);
    EXPECT_EQ(reply.sampled[i].seq, static_cast<int32_t>(i));
    EXPECT_EQ(reply.sampled[i].token.token, want.token);
    EXPECT_EQ(reply.sampled[i].token.logprob, want.logprob);
    ASSERT_EQ(reply.sampled[i].token.top.size(), want.top.size());
    EXPECT_EQ(exec[i]->num_generated(), 1);
  }
  caf::anon_send_exit(e, caf::exit_reason::user_shutdown);
}

// A tensor-parallel group over two CPU shards: rank 0 samples each sequence once; rank 1 only computes.
TEST(executor_sampling, with_tensor_parallelism_only_rank_zero_samples_and_only_once) {
  system_fixture f;
  auto comm = std::make_shared<cpu_comm_group>(2);
  auto full = read_model_config(testing::fixture_dir("tiny-llama"));
  ASSERT_TRUE(full.ok());
  auto src = open_weights(testing::fixture_dir("tiny-llama"));
  ASSERT_TRUE(src.ok());
  std::vector<std::shared_ptr<model_backend>> ranks;
  for (int32_t r = 0; r < 2; ++r) {
    auto shard = make_sharded_source(**src, *full, {r, 2});
    const model_config rc = shard_config(*full, {r, 2});
    auto w = load_model_weights(rc, **shard);
    ASSERT_TRUE(w.ok());
    cpu_model_options o;
    o.num_kv_blocks = 16;
    o.block_seq_len = 16;
    o.num_threads = 1;
    o.comm = comm;
    o.tp_rank = r;
    auto m = cpu_model::create(rc, std::move(*w), o);
    ASSERT_TRUE(m.ok()) << m.err().message;
    ranks.push_back(std::shared_ptr<model_backend>(std::move(*m)));
  }
  executor_group g = make_executor_group(*f.sys, ranks, [comm](int64_t s) { comm->abort(s); });
  std::vector<executor_actor> execs{g.spawn(0), g.spawn(1)};
  std::vector<std::shared_ptr<sampler>> smp;
  for (int i = 0; i < 2; ++i) smp.push_back(std::make_shared<sampler>(seeded(), std::vector<int32_t>{}));
  const step_batch b = prefill_batch(smp);
  // Both ranks at once (their all-reduces meet), as the scheduler sends them.
  std::vector<step_logits> replies(2);
  std::vector<std::thread> threads;
  for (size_t r = 0; r < 2; ++r) threads.emplace_back([&, r] { replies[r] = step(*f.sys, execs[r], b); });
  for (auto& t : threads) t.join();
  ASSERT_EQ(replies[0].sampled.size(), 2u);
  EXPECT_EQ(replies[0].num_rows(), 0);
  EXPECT_TRUE(replies[1].sampled.empty());
  EXPECT_EQ(replies[1].num_rows(), 0);
  for (const auto& s : smp) EXPECT_EQ(s->num_generated(), 1) << "each sampler ran exactly once";
  for (auto& e : execs) caf::anon_send_exit(e, caf::exit_reason::user_shutdown);
}

TEST(executor_sampling, a_step_that_crosses_processes_loses_its_samplers_and_gets_rows_back) {
  system_fixture f;
  auto smp = std::make_shared<sampler>(seeded(), std::vector<int32_t>{});
  const step_batch local = prefill_batch({smp, smp});
  std::vector<char> buf;
  caf::binary_serializer sink{*f.sys, buf};
  ASSERT_FALSE(sink(caf::make_message(local)));
  caf::message back;
  caf::binary_deserializer source{*f.sys, buf};
  ASSERT_FALSE(source(back));
  ASSERT_TRUE(back.match_elements<step_batch>());
  const step_batch remote = back.get_as<step_batch>(0);
  ASSERT_EQ(remote.seqs.size(), 2u);
  EXPECT_EQ(remote.seqs[0].tokens, local.seqs[0].tokens);
  EXPECT_EQ(remote.seqs[0].sampling, nullptr) << "a pointer cannot travel";

  auto e = spawn_executor(*f.sys, testing::fixture_backend("tiny-llama", 16, 16));
  const step_logits reply = step(*f.sys, e, remote);
  EXPECT_TRUE(reply.sampled.empty());
  EXPECT_EQ(reply.num_rows(), 2) << "without a sampler the rows come back for the scheduler to sample";
  EXPECT_EQ(smp->num_generated(), 0);
  caf::anon_send_exit(e, caf::exit_reason::user_shutdown);

  // The reply's sampled tokens survive the serializer too.
  step_logits l;
  sampled_seq s;
  s.seq = 1;
  s.token = {42, -0.5f, {{42, -0.5f}, {7, -1.25f}}};
  s.terminated = true;
  l.sampled.push_back(s);
  std::vector<char> buf2;
  caf::binary_serializer sink2{*f.sys, buf2};
  ASSERT_FALSE(sink2(caf::make_message(l)));
  caf::message back2;
  caf::binary_deserializer source2{*f.sys, buf2};
  ASSERT_FALSE(source2(back2));
  const auto& l2 = back2.get_as<step_logits>(0);
  ASSERT_EQ(l2.sampled.size(), 1u);
  EXPECT_EQ(l2.sampled[0].seq, 1);
  EXPECT_EQ(l2.sampled[0].token.token, 42);
  ASSERT_EQ(l2.sampled[0].token.top.size(), 2u);
  EXPECT_EQ(l2.sampled[0].token.top[1].logprob, -1.25f);
  EXPECT_TRUE(l2.sampled[0].terminated);
}

}  // namespace
}  // namespace troupe
