// Steady decode in the scheduling core allocates nothing per sequence on the event path: taking a
// step's sampled tokens (on_step_output) and handing its events over (swap_events) cost the same
// allocations at batch 256 as at batch 1, and the events still say what was sampled.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/block_manager_core.h"
#include "runtime/block_pool.h"
#include "runtime/scheduler_core.h"
#include "support/allocation_counter.h"

namespace troupe {
namespace {

using testing::allocations_of;

constexpr int kWarmup = 16, kCounted = 32;

// Allocations per step of the event path over steady decode steps [kWarmup, kWarmup + kCounted)
// of `batch` requests. Every token sampled is 1 + (step % 7), as the executor would report it.
double event_path_allocations(int32_t batch) {
  const int32_t bs = 16, num_blocks = 1 << 14;
  scheduler_limits lim;
  lim.max_batch_size = batch;
  lim.max_prefill_tokens = 1 << 20;
  lim.block_seq_len = bs;
  lim.num_blocks = num_blocks;
  lim.prefix_caching = false;  // full-block commits are the block manager's protocol, not events
  block_pool pool(block_pool_options{num_blocks, bs, false, {}});
  scheduler_core core(lim, nullptr, {});
  for (int32_t i = 0; i < batch; ++i) {
    generation_request r;
    r.prompt_ids = {3, 4, 5, 6, 7, 8, 9, 10};
    r.params.temperature = 0;
    r.params.max_tokens = 64;
    r.params.ignore_eos = true;
    r.request_id = "allocation-test-request-" + std::to_string(i);  // longer than a short string
    core.add_request(r, 0.0);
  }
  event_batch events;
  step_logits out;
  out.sampled.reserve(static_cast<size_t>(batch));
  int64_t counted = 0;
  for (int step = 0; step < kWarmup + kCounted; ++step) {
    auto plan = core.plan_step(pool.num_available());
    EXPECT_TRUE(plan.has_value());
    if (!plan) return -1;
    step_batch b = core.apply_blocks(apply_block_request(pool, *plan));
    EXPECT_EQ(b.seqs.size(), static_cast<size_t>(batch));
    out.sampled.clear();
    for (size_t i = 0; i < b.seqs.size(); ++i) {
      if (!b.seqs[i].want_logits) continue;
      sampled_seq& s = out.sampled.emplace_back();
      s.seq = static_cast<int32_t>(i);
      s.token.token = 1 + step % 7;
    }
    auto take = [&] {
      core.on_step_output(out);
      events.clear();
      core.swap_events(events);
    };
    if (step >= kWarmup) counted += allocations_of(take);
    else take();
    // Every sequence got its token as an event.
    EXPECT_EQ(events.size(), static_cast<size_t>(batch)) << "step " << step;
    EXPECT_EQ(events.tokens.size(), static_cast<size_t>(batch)) << "step " << step;
    for (int32_t t : events.tokens) EXPECT_EQ(t, 1 + step % 7);
  }
  return static_cast<double>(counted) / kCounted;
}

TEST(scheduler_core_allocations, steady_decode_events_allocate_the_same_at_any_batch) {
  static std::vector<int32_t> keep;
  ASSERT_GT(allocations_of([] { keep = std::vector<int32_t>(100, 1); }), 0) << "this binary counts no allocations";
  const double one = event_path_allocations(1);
  const double many = event_path_allocations(256);
  EXPECT_LE(one, 1.0) << "allocations per step at batch 1";
  EXPECT_LE(many, one + 0.5) << "allocations per step at batch 256 (batch 1: " << one << ")";
}

}  // namespace
}  // namespace troupe
