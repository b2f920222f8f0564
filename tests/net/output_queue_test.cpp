// output_queue: chunks queued while a write is in flight leave together in the next write, a
// partial write is finished before newer bytes, and steady streaming reuses the two buffers.
// event_inbox: events cross to the strand in batches with one drain request per batch.
#include "net/output_queue.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "net/event_inbox.h"

namespace troupe {
namespace {

TEST(output_queue, coalesces_chunks_queued_during_a_write_into_one_write) {
  output_queue q;
  q.append("data: 1\n\n");
  EXPECT_EQ(q.next(), "data: 1\n\n");  // the write in flight
  q.append("data: 2\n\n");
  q.append("data: 3\n\n");
  q.append_owned(std::string("data: 4\n\n"));
  EXPECT_EQ(q.size(), 9u * 4);
  q.consumed(9);
  EXPECT_EQ(q.next(), "data: 2\n\ndata: 3\n\ndata: 4\n\n");  // one write for three chunks
  q.consumed(27);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.next(), "");
}

TEST(output_queue, finishes_a_partial_write_before_newer_bytes) {
  output_queue q;
  q.append("abcdef");
  EXPECT_EQ(q.next(), "abcdef");
  q.append("XYZ");
  q.consumed(2);
  EXPECT_EQ(q.size(), 7u);
  EXPECT_EQ(q.next(), "cdef");  // the rest of the same write, not mixed with what came later
  q.consumed(4);
  EXPECT_EQ(q.next(), "XYZ");
  q.consumed(3);
  EXPECT_TRUE(q.empty());
}

TEST(output_queue, steady_streaming_reuses_two_buffers) {
  output_queue q;
  std::set<const char*> buffers;
  for (int round = 0; round < 200; ++round) {
    for (int k = 0; k < 3; ++k) q.append("data: {\"choices\":[{\"text\":\"token\"}]}\n\n");
    const std::string_view w = q.next();
    if (round >= 2) buffers.insert(w.data());  // after both buffers have grown
    q.consumed(w.size());
  }
  EXPECT_LE(buffers.size(), 2u);
}

TEST(output_queue, lets_go_of_a_large_response_buffer) {
  output_queue q;
  q.append_owned(std::string(1 << 20, 'x'));  // taken without a copy
  const std::string_view w = q.next();
  EXPECT_EQ(w.size(), 1u << 20);
  q.consumed(w.size());
  q.append("small");
  const std::string_view s = q.next();
  EXPECT_EQ(s, "small");
  q.consumed(s.size());
  q.clear();
  EXPECT_TRUE(q.empty());
}

TEST(event_inbox, asks_for_one_drain_per_batch_and_keeps_order) {
  event_inbox inbox;
  generation_event ev;
  ev.text = "a";
  EXPECT_TRUE(inbox.push(7, ev, 0));  // was empty: post a drain
  ev.text = "b";
  ev.index = 1;
  EXPECT_FALSE(inbox.push(7, ev, 2));  // rides on the drain already posted
  std::vector<event_inbox::entry> out;
  ASSERT_EQ(inbox.take(out), 2u);
  EXPECT_EQ(out[0].ev.text, "a");
  EXPECT_EQ(out[0].ev.index, 0);
  EXPECT_EQ(out[1].ev.text, "b");
  EXPECT_EQ(out[1].ev.index, 3);  // shifted by the prompt's base
  EXPECT_EQ(out[1].seq, 7u);
  EXPECT_EQ(inbox.take(out), 0u);
  ev.text = "c";
  EXPECT_TRUE(inbox.push(8, ev, 0));  // empty again after the drain
  ASSERT_EQ(inbox.take(out), 1u);
  EXPECT_EQ(out[0].ev.text, "c");
  EXPECT_EQ(out[0].seq, 8u);
}

}  // namespace
}  // namespace troupe
