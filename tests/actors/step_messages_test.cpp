// The step path's messages across nodes: a step whose entries keep their ids inline (one decode
// token, one new block) or on the heap (a prefill chunk, a whole table), a block reply's extends and
// a step's flat prefix commits all round-trip through CAF's serializer unchanged; a peer's commit
// batch whose ranges point outside its tokens is refused (apply_block_commits trusts them).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "actors/messages.h"
#include "support/message_system.h"

namespace troupe {
namespace {

using system_fixture = testing::message_system;

std::vector<int32_t> ids(int32_t n, int32_t from) {
  std::vector<int32_t> v;
  for (int32_t i = 0; i < n; ++i) v.push_back(from + i);
  return v;
}

TEST(step_messages, a_step_with_inline_and_heap_ids_crosses_nodes_unchanged) {
  system_fixture f;
  step_batch b;
  b.step_id = 12;
  b.delta = true;
  b.removed = {4, 9};
  for (int32_t n : {1, 4, 5, 37}) {  // inline up to id_list::kInline, on the heap past it
    seq_step& s = b.seqs.emplace_back();
    s.seq_id = 100 + n;
    s.tokens = ids(n, 1000 * n);
    s.block_table = ids(n / 3, 50 * n);
    s.start_pos = 3 * n;
    s.new_seq = n > 4;
  }
  const step_batch back = f.round_trip(b);
  ASSERT_EQ(back.seqs.size(), b.seqs.size());
  for (size_t i = 0; i < b.seqs.size(); ++i) {
    EXPECT_EQ(back.seqs[i].seq_id, b.seqs[i].seq_id);
    EXPECT_EQ(back.seqs[i].tokens.to_vector(), b.seqs[i].tokens.to_vector()) << "entry " << i;
    EXPECT_EQ(back.seqs[i].block_table.to_vector(), b.seqs[i].block_table.to_vector()) << "entry " << i;
    EXPECT_EQ(back.seqs[i].start_pos, b.seqs[i].start_pos);
    EXPECT_EQ(back.seqs[i].new_seq, b.seqs[i].new_seq);
  }
  EXPECT_EQ(back.removed, b.removed);
  EXPECT_EQ(back.step_id, 12);
}

TEST(step_messages, block_replies_and_commit_batches_cross_nodes_unchanged) {
  system_fixture f;
  block_reply r;
  r.extends.push_back({7, true, ids(1, 40)});
  r.extends.push_back({8, true, ids(6, 50)});
  r.extends.push_back({9, false, {}});
  const block_reply rb = f.round_trip(r);
  ASSERT_EQ(rb.extends.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rb.extends[i].holder, r.extends[i].holder);
    EXPECT_EQ(rb.extends[i].ok, r.extends[i].ok);
    EXPECT_EQ(rb.extends[i].blocks.to_vector(), r.extends[i].blocks.to_vector());
  }
  block_commit_batch c;
  c.add(3, 0, ids(32, 1));
  c.add(5, 2, ids(16, 500));
  const block_commit_batch cb = f.round_trip(c);
  ASSERT_EQ(cb.entries.size(), 2u);
  EXPECT_EQ(cb.tokens, c.tokens);
  EXPECT_EQ(cb.entries[1].holder, 5u);
  EXPECT_EQ(cb.entries[1].first_block, 2);
  EXPECT_EQ(std::vector<int32_t>(cb.tokens_of(cb.entries[1]).begin(), cb.tokens_of(cb.entries[1]).end()),
            ids(16, 500));
}

TEST(step_messages, a_peers_commit_batch_with_ranges_outside_its_tokens_is_refused) {
  system_fixture f;
  auto corrupt = [](auto change) {
    block_commit_batch b;
    b.add(3, 0, ids(16, 1));
    change(b);
    return b;
  };
  const std::vector<block_commit_batch> bad = {
      corrupt([](block_commit_batch& b) { b.entries[0].tokens_end = 99; }),
      corrupt([](block_commit_batch& b) { b.entries[0].tokens_begin = -1; }),
      corrupt([](block_commit_batch& b) { b.entries[0].tokens_begin = b.entries[0].tokens_end + 1; }),
      corrupt([](block_commit_batch& b) { b.entries[0].first_block = -2; }),
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    std::vector<char> buf;
    caf::binary_serializer sink{*f.sys, buf};
    ASSERT_FALSE(sink(bad[i]));
    block_commit_batch y;
    caf::binary_deserializer source{*f.sys, buf};
    EXPECT_TRUE(source(y)) << "corruption " << i << " was accepted";
  }
}

}  // namespace
}  // namespace troupe
