// The flat batch of a step's events (runtime/event_batch.h) as sinks see it: events read back as
// they were added (tokens, text, finish, usage, logprobs, failures), a split by sink keeps each
// event whole, a batch crosses nodes unchanged, and a peer's batch whose ranges point outside its
// buffers is refused at deserialization (read() trusts them).
#include <gtest/gtest.h>

#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "actors/messages.h"
#include "support/message_system.h"

namespace troupe {
namespace {

event_batch sample_batch() {
  event_batch b;
  const int32_t a[] = {5, 6};
  usage_info u;
  u.completion_tokens = 2;
  b.add_event(7, 0, a, "hi", finish_reason::none, 0.5, usage_info{}, {}, nullptr);
  std::vector<token_logprobs> lp(1);
  lp[0].token = 9;
  lp[0].logprob = -0.25f;
  const int32_t c[] = {9};
  b.add_event(8, 1, c, " there", finish_reason::length, 0.0, u, std::move(lp), nullptr);
  b.add_failure(9, error{errc::timeout, "too slow"});
  return b;
}

void expect_sample(const event_batch& b) {
  ASSERT_EQ(b.size(), 3u);
  generation_event ev;
  b.read(0, ev);
  EXPECT_EQ(b.entries[0].request, 7u);
  EXPECT_EQ(ev.token_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(ev.text, "hi");
  EXPECT_EQ(ev.queue_time_s, 0.5);
  EXPECT_EQ(ev.finish, finish_reason::none);
  EXPECT_TRUE(ev.logprobs.empty());
  b.read(1, ev);  // the same event object: its buffers are rewritten, not appended to
  EXPECT_EQ(b.entries[1].request, 8u);
  EXPECT_EQ(ev.index, 1);
  EXPECT_EQ(ev.token_ids, (std::vector<int32_t>{9}));
  EXPECT_EQ(ev.text, " there");
  EXPECT_EQ(ev.finish, finish_reason::length);
  EXPECT_EQ(ev.usage.completion_tokens, 2);
  ASSERT_EQ(ev.logprobs.size(), 1u);
  EXPECT_EQ(ev.logprobs[0].token, 9);
  ASSERT_TRUE(b.entries[2].failed);
  EXPECT_EQ(b.failure(2).code, errc::timeout);
  EXPECT_EQ(b.failure(2).message, "too slow");
}

TEST(event_batch, events_read_back_as_added_and_a_split_keeps_them_whole) {
  const event_batch b = sample_batch();
  expect_sample(b);
  event_batch first, rest;
  first.append(b, 0);
  rest.append(b, 1);
  rest.append(b, 2);
  generation_event ev;
  rest.read(0, ev);
  EXPECT_EQ(ev.text, " there");
  EXPECT_EQ(ev.token_ids, (std::vector<int32_t>{9}));
  EXPECT_EQ(rest.failure(1).message, "too slow");
  first.read(0, ev);
  EXPECT_EQ(ev.text, "hi");
  EXPECT_TRUE(ev.logprobs.empty());
  event_batch all;
  for (size_t k = 0; k < b.size(); ++k) all.append(b, k);
  expect_sample(all);
}

using system_fixture = testing::message_system;

TEST(event_batch, a_batch_crosses_nodes_unchanged) {
  system_fixture f;
  caf::message back;
  ASSERT_FALSE(f.round_trip(sample_batch(), back));
  ASSERT_TRUE(back.match_elements<event_batch>());
  expect_sample(back.get_as<event_batch>(0));
}

TEST(event_batch, a_peers_batch_with_ranges_outside_its_buffers_is_refused) {
  system_fixture f;
  auto corrupt = [](auto change) {
    event_batch b = sample_batch();
    change(b);
    return b;
  };
  const std::vector<event_batch> bad = {
      corrupt([](event_batch& b) { b.entries[0].tokens_end = 99; }),
      corrupt([](event_batch& b) { b.entries[1].text_begin = b.entries[1].text_end + 1; }),
      corrupt([](event_batch& b) { b.entries[1].detail = 5; }),
      corrupt([](event_batch& b) { b.entries[2].detail = -1; }),  // a failure without its error
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    // As a value: the deserializer fails.
    std::vector<char> buf;
    caf::binary_serializer sink{*f.sys, buf};
    ASSERT_FALSE(sink(bad[i]));
    event_batch y;
    caf::binary_deserializer source{*f.sys, buf};
    EXPECT_TRUE(source(y)) << "corruption " << i << " was accepted";
    // In a message (what the middleman delivers): CAF 0.17 drops the element, so no handler ever
    // sees the batch.
    caf::message back;
    const caf::error err = f.round_trip(bad[i], back);
    EXPECT_TRUE(err || !back.match_elements<event_batch>()) << "corruption " << i << " reached a handler";
  }
}

}  // namespace
}  // namespace troupe
