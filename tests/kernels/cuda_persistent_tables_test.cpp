// The persistent device block table (kernels/cuda_model_step_input.cpp): steps that come as deltas
// through the executor's persistent batch (rows patched in place, rows moved by removals) give
// bit-identical logits to the same steps given as whole batches on a second model, through eager
// prefill steps and graphed decode steps alike.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "kernels/cuda_model.h"
#include "runtime/persistent_batch.h"
#include "runtime/step_delta.h"
#include "runtime/weight_source.h"

namespace troupe {
namespace {

struct live_seq {
  std::vector<int32_t> blocks;
  int32_t pos = 0;
  std::vector<int32_t> next;  // tokens of its next step
  sent_table sent;
  int32_t finish_at = 0;
};

TEST(cuda_persistent_tables, delta_steps_equal_whole_batches_through_moves_and_patches) {
  TROUPE_REQUIRE_GPU();
  const std::string dir = std::string(TROUPE_FIXTURES_DIR) + "/tiny-llama";
  auto cfg = read_model_config(dir);
  ASSERT_TRUE(cfg.ok()) << cfg.err().to_string();
  auto weights = open_weights(dir);
  ASSERT_TRUE(weights.ok()) << weights.err().to_string();
  cuda_model_options o;
  o.block_seq_len = 4;  // small blocks: rows grow every few steps
  o.num_kv_blocks = 600;
  o.max_batch_size = 8;
  o.max_prefill_token_num = 256;
  o.session_len = 256;
  auto delta_model = cuda_model::create(*cfg, (*weights).get(), o);
  ASSERT_TRUE(delta_model.ok()) << delta_model.err().to_string();
  auto whole_model = cuda_model::create(*cfg, (*weights).get(), o);
  ASSERT_TRUE(whole_model.ok()) << whole_model.err().to_string();
  const int64_t V = cfg->vocab_size, bs = o.block_seq_len;

  persistent_batch held(8, 4);
  step_delta_tracker tracker;
  std::map<int64_t, live_seq> live;
  int32_t next_block = 0;
  int64_t rewritten_rows = 0, graph_steps = 0;
  for (int32_t step = 0; step < 60; ++step) {
    if (step % 5 == 0 && live.size() < 8) {  // a new sequence with a prompt of 5 + step % 7 tokens
      live_seq s;
      for (int32_t t = 0; t < 5 + step % 7; ++t) s.next.push_back((step * 31 + t * 17) % static_cast<int32_t>(V));
      s.finish_at = step + 12 + step % 9;
      live[step + 1] = std::move(s);
    }
    for (auto it = live.begin(); it != live.end();)
      if (it->second.finish_at == step) {
        tracker.forget(it->second.sent, it->first);
        it = live.erase(it);
      } else {
        ++it;
      }
    if (live.empty()) continue;
    step_batch delta, whole;
    bool decode_only = true;
    for (auto& [id, s] : live) {
      seq_step ss;
      ss.seq_id = id;
      ss.start_pos = s.pos;
      ss.tokens = s.next;
      decode_only = decode_only && s.next.size() == 1;
      while (static_cast<int64_t>(s.blocks.size()) * bs < s.pos + static_cast<int64_t>(s.next.size()))
        s.blocks.push_back((next_block++ * 37) % static_cast<int32_t>(o.num_kv_blocks));
      seq_step full = ss;
      full.block_table = s.blocks;
      whole.seqs.push_back(std::move(full));
      tracker.fill(s.sent, s.blocks, ss);
      delta.seqs.push_back(std::move(ss));
    }
    tracker.seal(delta);
    const int32_t rows_before = static_cast<int32_t>(held.num_rows());
    ASSERT_TRUE(held.apply(delta).ok());
    for (int64_t k = 0; k < delta.tables.num_dirty; ++k)
      if (delta.tables.dirty_from[k] == 0 && delta.tables.dirty[k] < rows_before) ++rewritten_rows;
    graph_steps += decode_only;
    step_logits a, b;
    auto sa = (*delta_model)->forward(delta, a);
    ASSERT_TRUE(sa.ok()) << sa.err().to_string();
    auto sb = (*whole_model)->forward(whole, b);
    ASSERT_TRUE(sb.ok()) << sb.err().to_string();
    ASSERT_EQ(a.row_seq, b.row_seq);
    ASSERT_EQ(a.data, b.data) << "step " << step;  // the same kernels on the same tables: bit-identical
    size_t i = 0;
    for (auto& [id, s] : live) {
      const float* row = a.row(static_cast<int64_t>(i++));
      s.pos += static_cast<int32_t>(s.next.size());
      s.next = {static_cast<int32_t>(std::max_element(row, row + V) - row)};
    }
  }
  EXPECT_GT(rewritten_rows, 0) << "no existing row was rewritten (a removal's move): the test missed compaction";
  EXPECT_GT(graph_steps, 10);
}

}  // namespace
}  // namespace troupe
