// Listener limits and lifecycle over loopback: max connections, header size, HTTP/1.0 streaming,
// and a graceful stop that lets an in-flight stream finish before closing.
#include <gtest/gtest.h>

#include <future>

#include "listener_test_fixture.h"

namespace troupe::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

TEST_F(listener_test, connections_beyond_the_limit_get_503_and_close) {
  opts.server.max_connections = 1;
  start();
  conn first(port);
  expect_good(first);  // counted by now
  conn second(port);
  ASSERT_TRUE(second.send(get("/ready")));
  auto r = second.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_FALSE(r->headers["retry-after"].empty());
  EXPECT_TRUE(second.closed_within(2000ms));
  // The first connection ends on the server's side (Connection: close): once its client sees the
  // close, the slot is free, even though both clients still hold their sockets open.
  ASSERT_TRUE(first.send(get("/ready", "Connection: close\r\n")));
  ASSERT_TRUE(first.read_reply());
  EXPECT_TRUE(first.closed_within(2000ms));
  expect_good();
}

// A connection stops counting against the limit when the server closes it, not when the session's
// last handler lets go of it (the server lingers to drain the client's unread input): a client that
// saw its connection close can connect again at once, every time.
TEST_F(listener_test, a_closed_connection_frees_its_slot_at_once) {
  opts.server.max_connections = 1;
  start();
  std::vector<std::unique_ptr<conn>> held;  // closed by the server, still open on the client side
  for (int i = 0; i < 20; ++i) {
    held.push_back(std::make_unique<conn>(port));
    conn& c = *held.back();
    ASSERT_TRUE(c.send(post("/v1/completions", R"({"prompt":"hi","max_tokens":2})", "Connection: close\r\n")));
    auto r = c.read_reply();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << "connection " << i << ": " << r->body;
    ASSERT_TRUE(c.closed_within(2000ms)) << "connection " << i;
  }
}

TEST_F(listener_test, oversized_header_is_431) {
  start();
  conn c(port);
  ASSERT_TRUE(c.send("GET /ready HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n"));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  expect_good();
}

TEST_F(listener_test, http10_streaming_is_raw_and_closes) {
  start();
  conn c(port);
  const std::string body = R"({"prompt":"hi","stream":true,"max_tokens":2})";
  ASSERT_TRUE(c.send("POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) +
                     "\r\n\r\n" + body));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->headers["transfer-encoding"].empty());
  EXPECT_EQ(r->body.substr(0, 6), "data: ");
  EXPECT_EQ(r->body.substr(r->body.size() - 14), "data: [DONE]\n\n");
}

TEST_F(listener_test, stop_lets_an_in_flight_stream_finish_then_closes) {
  eng.pieces.assign(30, "s");
  eng.delay = 10ms;
  start();
  conn c(port);
  ASSERT_TRUE(c.send(post("/v1/completions", R"({"prompt":"hi","stream":true,"max_tokens":30})")));
  ASSERT_TRUE(c.read_until([](const std::string& b) { return b.find("data: ") != std::string::npos; }, 5000ms));
  auto stopped = std::async(std::launch::async, [&] { server->stop(std::chrono::milliseconds(1000)); });
  auto r = c.read_reply();  // the rest of the stream, then the server closes
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("data: [DONE]"), std::string::npos);
  EXPECT_TRUE(c.closed_within(2000ms));
  EXPECT_EQ(stopped.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(eng.drained());
  EXPECT_EQ(eng.num_cancelled(), 0u);
}

}  // namespace
}  // namespace troupe::test
