// The executor's persistent batch (runtime/persistent_batch.h) fed by the scheduler's delta tracker
// (runtime/step_delta.h): under adds, appends, finishes, preemptions, sitting out and executor
// restarts in random orders its tables equal a reference model's after every step, and so does a
// "device" copy patched from the dirty rows only; inconsistent deltas fail and clear it; steady
// decode allocates nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "runtime/persistent_batch.h"
#include "runtime/sampler.h"
#include "runtime/step_delta.h"
#include "support/allocation_counter.h"

namespace troupe {
namespace {

// The scheduler's view of one sequence in the random driver.
struct driven_seq {
  std::vector<int32_t> blocks;  // all its blocks so far
  int32_t pos = 0;              // tokens in KV
  sent_table sent;
};

// What the executor must hold of a sequence: its blocks and position as of the last step it was in.
struct held_seq {
  std::vector<int32_t> blocks;
  int32_t pos = 0;
};

seq_step decode_step(int64_t id, int32_t pos, int32_t token) {
  seq_step s;
  s.seq_id = id;
  s.tokens = {token};
  s.start_pos = pos;
  return s;
}

// A device's copy of the tables, indexed by row, kept in sync from each view's dirty rows only.
void patch_device(std::vector<std::vector<int32_t>>& device, const block_table_view& v) {
  if (static_cast<int64_t>(device.size()) < v.num_rows) device.resize(static_cast<size_t>(v.num_rows));
  for (int64_t k = 0; k < v.num_dirty; ++k) {
    const int32_t r = v.dirty[k];
    auto& row = device[static_cast<size_t>(r)];
    row.resize(static_cast<size_t>(v.len[r]));
    for (int32_t c = v.dirty_from[k]; c < v.len[r]; ++c) row[static_cast<size_t>(c)] = v.data[r * v.stride + c];
  }
}

TEST(persistent_batch, equals_a_reference_under_random_adds_appends_finishes_preemptions_and_restarts) {
  std::mt19937 rng(20261205);
  auto pick = [&](int32_t n) { return std::uniform_int_distribution<int32_t>(0, n - 1)(rng); };
  step_delta_tracker tracker;
  auto held = std::make_unique<persistent_batch>(4, 2);  // small: rows and stride must grow
  std::map<int64_t, driven_seq> running;                   // scheduler side
  std::map<int64_t, held_seq> reference;                   // what the executor must hold
  std::vector<std::vector<int32_t>> device;
  int64_t next_id = 1, next_block = 0, step_id = 0;
  int64_t checked_rows = 0, preemptions = 0, restarts = 0;
  std::vector<int64_t> preempted;  // resume later as new sequences with the same id

  for (int iter = 0; iter < 4000; ++iter) {
    // Random scheduler events between steps.
    const int32_t events = pick(4);
    for (int e = 0; e < events; ++e) {
      const int32_t op = pick(10);
      if (op <= 2 && running.size() < 40) {  // a new sequence (some start with cached blocks)
        const bool resume = !preempted.empty() && pick(2) == 0;
        const int64_t id = resume ? preempted.back() : next_id++;
        if (resume) preempted.pop_back();
        driven_seq s;
        const int32_t cached = pick(4);
        for (int32_t b = 0; b < cached + 1; ++b) s.blocks.push_back(static_cast<int32_t>(next_block++ % 1000));
        s.pos = cached * 8;
        running[id] = std::move(s);
      } else if (op <= 5 && !running.empty()) {  // blocks appended (decode crossed a block, a prefill chunk)
        auto it = std::next(running.begin(), pick(static_cast<int32_t>(running.size())));
        const int32_t n = 1 + pick(3);
        for (int32_t b = 0; b < n; ++b) it->second.blocks.push_back(static_cast<int32_t>(next_block++ % 1000));
      } else if (op <= 7 && !running.empty()) {  // finished
        auto it = std::next(running.begin(), pick(static_cast<int32_t>(running.size())));
        tracker.forget(it->second.sent, it->first);
        reference.erase(it->first);
        running.erase(it);
      } else if (op == 8 && !running.empty()) {  // preempted: blocks gone, recomputes later
        auto it = std::next(running.begin(), pick(static_cast<int32_t>(running.size())));
        tracker.forget(it->second.sent, it->first);
        reference.erase(it->first);
        preempted.push_back(it->first);
        running.erase(it);
        ++preemptions;
      } else if (op == 9 && pick(20) == 0) {  // the executor restarted (or a step failed)
        tracker.resend_all();
        reference.clear();
        if (pick(2) == 0) held = std::make_unique<persistent_batch>(4, 2);
        ++restarts;
      }
    }
    // A step over a random subset in a random order (the others sit it out).
    std::vector<int64_t> ids;
    for (auto& [id, s] : running)
      if (pick(4) != 0) ids.push_back(id);
    std::shuffle(ids.begin(), ids.end(), rng);
    step_batch batch;
    batch.step_id = ++step_id;
    for (int64_t id : ids) {
      driven_seq& s = running[id];
      const int32_t n = 1 + (pick(5) == 0 ? pick(6) : 0);  // decode, sometimes a prefill chunk
      seq_step ss = decode_step(id, s.pos, static_cast<int32_t>(iter % 97));
      ss.tokens.assign(static_cast<size_t>(n), 7);
      tracker.fill(s.sent, s.blocks, ss);
      s.pos += n;
      reference[id] = {s.blocks, s.pos};
      batch.seqs.push_back(std::move(ss));
    }
    if (batch.seqs.empty()) continue;
    tracker.seal(batch);
    ASSERT_TRUE(held->apply(batch).ok()) << "step " << step_id;
    patch_device(device, batch.tables);

    // The step's view: each seq's whole table.
    for (size_t i = 0; i < batch.seqs.size(); ++i) {
      const auto t = block_table_of(batch, i);
      ASSERT_EQ(std::vector<int32_t>(t.begin(), t.end()), running[batch.seqs[i].seq_id].blocks) << "step " << step_id;
    }
    // The whole persistent batch, and the device copy, against the reference.
    ASSERT_EQ(held->num_rows(), static_cast<int64_t>(reference.size())) << "step " << step_id;
    for (int32_t r = 0; r < held->num_rows(); ++r) {
      auto ref = reference.find(held->seq_id(r));
      ASSERT_NE(ref, reference.end()) << "row " << r << " holds a sequence that left";
      const auto t = held->table(r);
      ASSERT_EQ(std::vector<int32_t>(t.begin(), t.end()), ref->second.blocks) << "step " << step_id << " row " << r;
      ASSERT_EQ(held->position(r), ref->second.pos);
      ASSERT_EQ(held->row_of(held->seq_id(r)), r);
      ASSERT_EQ(device[static_cast<size_t>(r)], ref->second.blocks) << "device row " << r << " at step " << step_id;
      ++checked_rows;
    }
  }
  // The random walk reached the cases it is meant to cover.
  EXPECT_GT(checked_rows, 20000);
  EXPECT_GT(preemptions, 100);
  EXPECT_GT(restarts, 3);
}

TEST(persistent_batch, an_inconsistent_delta_fails_and_clears_it) {
  persistent_batch held;
  step_batch add;
  add.delta = true;
  add.seqs.push_back(decode_step(1, 0, 5));
  add.seqs[0].new_seq = true;
  add.seqs[0].block_table = {3};
  ASSERT_TRUE(held.apply(add).ok());

  step_batch unknown;  // an append to a sequence it never got
  unknown.delta = true;
  unknown.seqs.push_back(decode_step(2, 1, 5));
  EXPECT_FALSE(held.apply(unknown).ok());
  EXPECT_EQ(held.num_rows(), 0);

  ASSERT_TRUE(held.apply(add).ok());
  step_batch moved;  // resumes at a position its KV does not end at
  moved.delta = true;
  moved.seqs.push_back(decode_step(1, 5, 5));
  EXPECT_FALSE(held.apply(moved).ok());
  EXPECT_EQ(held.num_rows(), 0);

  step_batch twice = add;
  twice.seqs.push_back(add.seqs[0]);
  EXPECT_FALSE(held.apply(twice).ok());
  EXPECT_EQ(held.num_rows(), 0);

  step_batch whole;  // not a delta (direct callers): its own tables, untouched
  whole.seqs.push_back(decode_step(9, 0, 5));
  whole.seqs[0].block_table = {4, 5};
  ASSERT_TRUE(held.apply(whole).ok());
  EXPECT_EQ(whole.tables.data, nullptr);
  EXPECT_EQ(block_table_of(whole, 0).size(), 2u);
}

// Async scheduling: a step planned before the scheduler saw a sequence's token says feed_sampled,
// and the batch puts in the token record_sampled kept for that row, also after rows moved; a
// sequence this executor never sampled (new, restarted, or after a reset) fails the step.
TEST(persistent_batch, feeds_the_token_it_sampled_and_refuses_one_it_never_did) {
  persistent_batch held;
  step_batch first;
  first.delta = true;
  for (int64_t id : {1, 2, 3}) {
    first.seqs.push_back(decode_step(id, 0, 7));
    first.seqs.back().new_seq = true;
    first.seqs.back().block_table = {static_cast<int32_t>(id)};
  }
  ASSERT_TRUE(held.apply(first).ok());
  step_logits out;
  for (int32_t i = 0; i < 3; ++i) out.sampled.push_back({i, {100 + i, 0.0f, {}}, false, false});
  held.record_sampled(first, out);

  step_batch next;  // sequence 1 left: the last row (3) moves into its place, its token with it
  next.delta = true;
  next.removed = {1};
  for (int64_t id : {3, 2}) {
    next.seqs.push_back(decode_step(id, 1, 0));
    next.seqs.back().feed_sampled = true;
  }
  ASSERT_TRUE(held.apply(next).ok());
  EXPECT_EQ(next.seqs[0].tokens[0], 102);
  EXPECT_EQ(next.seqs[1].tokens[0], 101);
  EXPECT_FALSE(next.seqs[0].feed_sampled) << "the backend sees an ordinary step";
  EXPECT_EQ(held.last_token(held.row_of(3)), 102);

  step_batch fresh;  // a sequence that was never sampled here
  fresh.delta = true;
  fresh.seqs.push_back(decode_step(4, 0, 0));
  fresh.seqs[0].new_seq = true;
  fresh.seqs[0].feed_sampled = true;
  EXPECT_FALSE(held.apply(fresh).ok());
  EXPECT_EQ(held.num_rows(), 0);

  ASSERT_TRUE(held.apply(first).ok());  // rebuilt: the tokens sampled before the failure are gone
  step_batch again;
  again.delta = true;
  again.seqs.push_back(decode_step(2, 1, 0));
  again.seqs[0].feed_sampled = true;
  EXPECT_FALSE(held.apply(again).ok());
}

// Only what changed leaves the scheduler: an unchanged table sends no ids, a removal is sent once,
// and after resend_all every held sequence comes again whole, with a reset.
TEST(persistent_batch, the_tracker_sends_only_what_changed) {
  step_delta_tracker tracker;
  sent_table a;
  std::vector<int32_t> blocks = {1, 2};
  seq_step s;
  tracker.fill(a, blocks, s);
  EXPECT_TRUE(s.new_seq);
  EXPECT_EQ(s.block_table, blocks);
  step_batch first;
  tracker.seal(first);
  EXPECT_TRUE(first.reset);  // a fresh executor
  tracker.fill(a, blocks, s);
  EXPECT_FALSE(s.new_seq);
  EXPECT_TRUE(s.block_table.empty());
  blocks.push_back(3);
  tracker.fill(a, blocks, s);
  EXPECT_EQ(s.block_table, std::vector<int32_t>{3});
  step_batch second;
  tracker.seal(second);
  EXPECT_FALSE(second.reset);
  tracker.forget(a, 7);
  tracker.forget(a, 7);  // idempotent
  step_batch third;
  tracker.seal(third);
  EXPECT_EQ(third.removed, std::vector<int64_t>{7});
  tracker.fill(a, blocks, s);
  tracker.resend_all();
  tracker.fill(a, blocks, s);
  EXPECT_TRUE(s.new_seq);
  EXPECT_EQ(s.block_table, blocks);
  step_batch fourth;
  tracker.seal(fourth);
  EXPECT_TRUE(fourth.reset);
}

// Steady decode: 256 running sequences, every step a token each and now and then a block appended,
// then a step where some finish: apply() allocates nothing (capacity reserved, rows reused).
TEST(persistent_batch, steady_decode_applies_without_heap_allocations) {
  constexpr int64_t kSeqs = 256, kSteps = 64;
  persistent_batch held(kSeqs, 32);
  auto smp = std::make_shared<sampler>(sampling_params{}, std::vector<int32_t>{1}, std::vector<int32_t>{2});
  step_batch start;
  start.delta = start.reset = true;
  for (int64_t i = 0; i < kSeqs; ++i) {
    seq_step s = decode_step(i + 1, 0, 1);
    s.new_seq = true;
    s.block_table = {static_cast<int32_t>(i)};
    s.sampling = smp;
    start.seqs.push_back(std::move(s));
  }
  ASSERT_TRUE(held.apply(start).ok());
  std::vector<step_batch> steps(kSteps);  // the messages exist before the executor applies them
  for (int64_t k = 0; k < kSteps; ++k) {
    steps[k].delta = true;
    for (int64_t i = 0; i < kSeqs; ++i) {
      seq_step s = decode_step(i + 1, static_cast<int32_t>(k + 1), 1);
      if ((i + k) % 16 == 0) s.block_table = {static_cast<int32_t>(1000 + k)};  // crossed a block
      s.sampling = smp;
      steps[k].seqs.push_back(std::move(s));
    }
  }
  step_batch finish;  // three finish; the newest hundred run on (200 left with them)
  finish.delta = true;
  finish.removed = {3, 77, 200};
  for (int64_t id = kSeqs; id > kSeqs - 100; --id)
    if (id != 200) finish.seqs.push_back(decode_step(id, static_cast<int32_t>(kSteps + 1), 1));

  testing::count_allocations(true);
  bool ok = true;
  for (auto& b : steps) ok = held.apply(b).ok() && ok;
  ok = held.apply(finish).ok() && ok;
  testing::count_allocations(false);
  ASSERT_TRUE(ok);
  EXPECT_EQ(testing::counted_allocations(), 0);
  EXPECT_EQ(held.num_rows(), kSeqs - 3);
  EXPECT_EQ(held.row_of(77), -1);
  const int32_t r = held.row_of(kSeqs);  // (255 + k) % 16 == 0: a block at steps 1, 17, 33 and 49
  ASSERT_GE(r, 0);
  EXPECT_EQ(held.table(r).size(), 1u + kSteps / 16);
  EXPECT_EQ(held.position(r), kSteps + 2);
  EXPECT_EQ(held.sampling(r), smp);
}

}  // namespace
}  // namespace troupe
