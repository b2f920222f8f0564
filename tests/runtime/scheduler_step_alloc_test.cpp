// Steady decode through the whole scheduler-side step costs the same heap allocations per step at
// batch 256 as at batch 64: planning, the reservoir serving new blocks (sequences cross block
// boundaries every step), the delta batch, the executor's persistent batch, the sampled tokens taken
// back, the events handed over, and the commits of newly full blocks applied to the pool with
// prefix caching on. Each phase is counted on its own, so a failure names the phase that grew.
#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "runtime/block_manager_core.h"
#include "runtime/block_pool.h"
#include "runtime/block_reservoir.h"
#include "runtime/persistent_batch.h"
#include "runtime/scheduler_core.h"
#include "support/allocation_counter.h"

namespace troupe {
namespace {

using testing::allocations_of;

constexpr int kWarmup = 40, kCounted = 64;
constexpr int32_t kBlockLen = 16;

enum phase { plan, blocks, batch_apply, executor, output, commits, num_phases };
const char* const kPhaseNames[num_phases] = {"plan_step", "reservoir + pool assignments", "apply_blocks",
                                             "persistent batch", "on_step_output + events", "commits"};

struct per_step {
  std::array<double, num_phases> phase{};
  int64_t commits = 0;      // commit entries taken in the window
  int64_t assigned = 0;     // blocks the reservoir handed out in the window
};

// Allocations per step of each phase over steady decode steps [kWarmup, kWarmup + kCounted) of
// `batch` requests. Prompts are 5..20 tokens long, so every step some sequences fill a block.
per_step steady_decode(int32_t batch) {
  const int32_t num_blocks = 1 << 15;
  scheduler_limits lim;
  lim.max_batch_size = batch;
  lim.max_prefill_tokens = 1 << 20;
  lim.block_seq_len = kBlockLen;
  lim.num_blocks = num_blocks;
  lim.prefix_caching = true;
  block_pool pool(block_pool_options{num_blocks, kBlockLen, true, {}});
  scheduler_core core(lim, nullptr, {});
  block_reservoir reservoir(batch, uint64_t{1} << 62);
  persistent_batch held(batch, 8);
  for (int32_t i = 0; i < batch; ++i) {
    generation_request r;
    for (int32_t t = 0; t < 5 + i % 16; ++t) r.prompt_ids.push_back(100 + i * 32 + t);  // no two alike
    r.params.temperature = 0;
    r.params.max_tokens = 512;
    r.params.ignore_eos = true;
    r.request_id = "step-allocation-request-" + std::to_string(i);
    core.add_request(r, 0.0);
  }
  event_batch events;
  step_logits out;
  out.sampled.reserve(static_cast<size_t>(batch));
  per_step got;
  for (int step = 0; step < kWarmup + kCounted; ++step) {
    const bool counted = step >= kWarmup;
    auto run = [&](phase p, auto&& f) {
      if (counted) got.phase[p] += static_cast<double>(allocations_of(f));
      else f();
    };
    // The block manager's side of the refill: outside the scheduler's step (asynchronous).
    if (const int32_t n = reservoir.wanted(); n > 0) {
      reservoir.on_refill_sent();
      reservoir.on_grant(apply_block_reserve(pool, reservoir.holder(), n));
    }
    std::optional<block_request> planned;
    run(plan, [&] { planned = core.plan_step(pool.num_available() + reservoir.size()); });
    EXPECT_TRUE(planned.has_value()) << "step " << step;
    if (!planned) break;
    std::optional<block_reply> reply;
    run(blocks, [&] {
      block_assignments report;
      reply = reservoir.assign(*planned, report);
      if (reply) {
        apply_block_assignments(pool, report);
        for (const auto& g : report.grants) got.assigned += counted ? static_cast<int64_t>(g.blocks.size()) : 0;
      }
    });
    if (!reply) {  // admission (prefill): the block manager decides, with every block back
      if (const uint64_t h = reservoir.take_back()) pool.release(h);
      reply = apply_block_request(pool, *planned);
      EXPECT_FALSE(counted) << "step " << step << " needed the block manager in steady decode";
    }
    step_batch b;
    run(batch_apply, [&] { b = core.apply_blocks(*reply); });
    EXPECT_EQ(b.seqs.size(), static_cast<size_t>(batch)) << "step " << step;
    run(executor, [&] {
      EXPECT_TRUE(held.apply(b).ok());
      out.sampled.clear();
      for (size_t i = 0; i < b.seqs.size(); ++i) {
        if (!b.seqs[i].want_logits) continue;
        sampled_seq& s = out.sampled.emplace_back();
        s.seq = static_cast<int32_t>(i);
        s.token.token = 1 + step % 7;
      }
    });
    run(output, [&] {
      core.on_step_output(out);
      events.clear();
      core.swap_events(events);
    });
    EXPECT_EQ(events.size(), static_cast<size_t>(batch)) << "step " << step;
    run(commits, [&] {
      block_commit_batch c = core.take_commits();
      if (counted) got.commits += static_cast<int64_t>(c.entries.size());
      apply_block_commits(pool, c);
    });
    b = step_batch{};  // the message's end of life, outside the counted phases (as in the actor)
  }
  for (double& x : got.phase) x /= kCounted;
  // Every committed block is in the prefix cache: the commits went through, not just the counts.
  EXPECT_TRUE(pool.check_invariants().ok());
  return got;
}

TEST(scheduler_step_allocations, steady_decode_allocates_the_same_per_step_at_batch_64_and_256) {
  static std::vector<int32_t> keep;
  ASSERT_GT(allocations_of([] { keep = std::vector<int32_t>(100, 1); }), 0) << "this binary counts no allocations";
  const per_step small = steady_decode(64);
  const per_step large = steady_decode(256);
  // The window really crossed block boundaries: blocks were assigned and committed every few steps.
  EXPECT_GE(large.assigned, 256 * kCounted / kBlockLen - 256);
  EXPECT_GE(large.commits, 256 * kCounted / kBlockLen - 256);
  for (int p = 0; p < num_phases; ++p) {
    EXPECT_LE(large.phase[p], small.phase[p] + 0.25)
        << kPhaseNames[p] << ": allocations per step at batch 256 (batch 64: " << small.phase[p] << ")";
    EXPECT_LE(large.phase[p], 4.0) << kPhaseNames[p] << " allocates more than a few buffers per step";
  }
}

// A prefix computed by one request and committed block by block (only each newly full block's
// tokens travel) is found whole by the next request with the same prompt.
TEST(scheduler_step_allocations, incremental_commits_cache_the_same_prefix_as_whole_ones) {
  const int32_t num_blocks = 64;
  scheduler_limits lim;
  lim.max_batch_size = 4;
  lim.block_seq_len = kBlockLen;
  lim.num_blocks = num_blocks;
  block_pool pool(block_pool_options{num_blocks, kBlockLen, true, {}});
  scheduler_core core(lim, nullptr, {});
  generation_request r;
  for (int32_t t = 0; t < 20; ++t) r.prompt_ids.push_back(7 + t);
  r.params.temperature = 0;
  r.params.max_tokens = 40;
  r.params.ignore_eos = true;
  core.add_request(r, 0.0);
  std::vector<int32_t> all = r.prompt_ids;
  int32_t entries = 0;
  for (int step = 0; step < 64 && core.has_work(); ++step) {
    auto plan = core.plan_step(pool.num_available());
    ASSERT_TRUE(plan.has_value());
    step_batch b = core.apply_blocks(apply_block_request(pool, *plan));
    step_logits out;
    for (size_t i = 0; i < b.seqs.size(); ++i) {
      sampled_seq& s = out.sampled.emplace_back();
      s.seq = static_cast<int32_t>(i);
      s.token.token = 3 + step % 5;
    }
    if (!b.seqs.empty() && b.seqs[0].want_logits) all.push_back(3 + step % 5);
    core.on_step_output(out);
    block_commit_batch c = core.take_commits();
    for (const auto& e : c.entries) {
      ++entries;
      EXPECT_EQ(e.tokens_end - e.tokens_begin, static_cast<int64_t>(kBlockLen))
          << "decode commits one new block at a time";
      EXPECT_TRUE(std::equal(c.tokens.begin() + e.tokens_begin, c.tokens.begin() + e.tokens_end,
                             all.begin() + static_cast<int64_t>(e.first_block) * kBlockLen));
    }
    apply_block_commits(pool, c);
    pool.release_all_of_holders(core.take_releases());
  }
  ASSERT_FALSE(core.has_work());
  // 20 prompt tokens + 40 generated = 60 computed... the last token is never computed: 59 in KV,
  // 3 full blocks committed one by one.
  EXPECT_EQ(entries, 3);
  auto m = pool.match_prefix(999, all);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->num_tokens, 3 * kBlockLen);
}

}  // namespace
}  // namespace troupe
