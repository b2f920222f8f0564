// SSE streams and the write timeout: a client that stops reading is dropped once a write makes no
// progress for --write-timeout (its generation cancelled, counted as http/write_timeout), while a
// client that keeps reading a long stream is never dropped, however many timeouts the stream lasts
// (the write timer is armed once and pushed by every write, not re-armed per write).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "listener_test_fixture.h"

namespace troupe::test {
namespace {

using namespace std::chrono_literals;

std::string stream_request(int max_tokens) {
  return post("/v1/completions",
              R"({"prompt":"hi","stream":true,"max_tokens":)" + std::to_string(max_tokens) + "}");
}

TEST_F(listener_test, sse_write_that_stalls_past_the_write_timeout_is_disconnected) {
  opts.server.max_queued_output_bytes = uint64_t{1} << 30;  // only the write timeout can act here
  opts.server.write_timeout_s = 0.5;
  eng.pieces.assign(60, std::string(256 << 10, 'q'));  // fills the socket buffers within ~0.5 s
  eng.delay = 20ms;
  start();
  conn c(port);
  ASSERT_TRUE(c.send(stream_request(60)));  // and never reads
  ASSERT_TRUE(troupe::testing::wait_until([&] { return eng.num_cancelled() == 1; }, 20s));
  EXPECT_EQ(server->metrics().slow_clients().at({"http", "write_timeout"}), 1u);
  EXPECT_TRUE(c.closed_within(5000ms));
}

TEST_F(listener_test, sse_reader_that_keeps_reading_outlives_many_write_timeouts) {
  opts.server.max_queued_output_bytes = uint64_t{1} << 30;
  opts.server.write_timeout_s = 0.4;
  eng.pieces.assign(60, std::string(512 << 10, 'q'));  // far more than the socket buffers hold
  eng.delay = 5ms;
  start();
  conn c(port);
  ASSERT_TRUE(c.send(stream_request(60)));
  // A slow reader: a short read every 10 ms keeps the server's writes blocked on a full socket most
  // of the time (so the write timer fires while a write is in flight), yet each write progresses
  // well within the 400 ms timeout. The pause paces the client; it synchronises nothing.
  auto done = [](const std::string& b) {  // looks at the tail only: the body grows to ~15 MB
    return b.find("data: [DONE]", b.size() > 64 ? b.size() - 64 : 0) != std::string::npos;
  };
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  bool finished = false;
  while (!finished && std::chrono::steady_clock::now() < deadline) {
    finished = c.read_until(done, 2ms);
    if (!finished) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(finished);
  EXPECT_EQ(eng.num_cancelled(), 0u);
  const auto slow = server->metrics().slow_clients();
  EXPECT_EQ(slow.count({"http", "write_timeout"}) ? slow.at({"http", "write_timeout"}) : 0u, 0u);
}

}  // namespace
}  // namespace troupe::test
