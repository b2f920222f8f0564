// WebSocket /v1/ws over loopback: two generations at once on one connection, a cancel, protocol
// errors that leave the connection usable, limits, auth, and socket close cancelling everything.
#include <gtest/gtest.h>

#include <map>

#include "listener_test_fixture.h"

namespace troupe::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct ws_run {
  std::string text;
  std::vector<int32_t> token_ids;
  json done;
  json error;
};

// Adds one frame to its generation's run; true when the frame ends it (done or error).
bool apply_frame(std::map<std::string, ws_run>& runs, const json& f) {
  ws_run& r = runs[f["id"].is_string() ? f["id"].get<std::string>() : ""];
  if (f["type"] == "token") {
    r.text += f["text"].get<std::string>();
    for (auto& t : f["token_ids"]) r.token_ids.push_back(t.get<int32_t>());
  } else if (f["type"] == "done") {
    r.done = f;
    return true;
  } else if (f["type"] == "error") {
    r.error = f["error"];
    return true;
  }
  return false;
}

// Reads frames into `runs` until `n` more generations have ended.
void collect_into(conn& c, std::map<std::string, ws_run>& runs, size_t n) {
  for (size_t finished = 0; finished < n;) {
    auto msg = c.ws_recv(5000ms);
    if (!msg) {
      ADD_FAILURE() << "no frame";
      return;
    }
    if (apply_frame(runs, json::parse(*msg))) ++finished;
  }
}

// Reads frames until every id in `ids` has a done or error frame.
std::map<std::string, ws_run> collect(conn& c, std::vector<std::string> ids) {
  std::map<std::string, ws_run> runs;
  collect_into(c, runs, ids.size());
  return runs;
}

TEST_F(listener_test, websocket_runs_two_generations_at_once_and_cancels_one) {
  eng.pieces.assign(40, "q");
  eng.delay = 5ms;
  eng.hold_after = 5;  // b (3 tokens) ends; a waits for its cancel
  start();
  conn c(port);
  ASSERT_TRUE(c.ws_handshake());
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"a","prompt":"hi","max_tokens":30})"));
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"b","messages":[{"role":"user","content":"x"}],"max_tokens":3})"));
  // Wait for a's first token, then cancel it. b's frames that come first are kept (b may even end
  // before a starts on a loaded machine).
  std::map<std::string, ws_run> runs;
  size_t finished = 0;
  for (;;) {
    auto msg = c.ws_recv(5000ms);
    ASSERT_TRUE(msg);
    json f = json::parse(*msg);
    if (apply_frame(runs, f)) ++finished;
    if (f["id"] == "a" && f["type"] == "token") break;
  }
  ASSERT_TRUE(c.ws_send(R"({"type":"cancel","id":"a"})"));
  collect_into(c, runs, 2 - finished);
  EXPECT_EQ(runs["b"].text, "qqq");
  EXPECT_EQ(runs["b"].done["finish_reason"], "length");
  EXPECT_EQ(runs["b"].done["usage"]["completion_tokens"], 3);
  EXPECT_EQ(runs["a"].done["finish_reason"], "abort");
  EXPECT_LT(runs["a"].text.size(), 30u);
  EXPECT_EQ(eng.num_cancelled(), 1u);
  EXPECT_EQ(eng.submitted().size(), 2u);
}

TEST_F(listener_test, websocket_protocol_errors_keep_the_connection) {
  opts.ws_max_generations = 1;
  eng.pieces.assign(40, "q");
  eng.delay = 5ms;
  start();
  conn c(port);
  ASSERT_TRUE(c.ws_handshake());
  const std::pair<const char*, const char*> bad[] = {
      {"not json", ""},
      {R"({"type":"dance","id":"x"})", "type"},
      {R"({"type":"generate","prompt":"hi"})", "id"},
      {R"({"type":"generate","id":"x","prompt":"hi","top_p":7})", "top_p"},
      {R"({"type":"cancel","id":"nobody"})", "id"},
  };
  for (const auto& [text, param] : bad) {
    SCOPED_TRACE(text);
    ASSERT_TRUE(c.ws_send(text));
    auto msg = c.ws_recv();
    ASSERT_TRUE(msg);
    json f = json::parse(*msg);
    EXPECT_EQ(f["type"], "error");
    EXPECT_EQ(f["error"]["param"].is_null() ? "" : f["error"]["param"].get<std::string>(), param);
  }
  // Limit: one generation at a time on this connection; a duplicate id is refused too.
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"g","prompt":"hi","max_tokens":20})"));
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"h","prompt":"hi"})"));
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"g","prompt":"hi"})"));
  std::vector<std::string> codes;
  json g_done;
  while (g_done.is_null()) {
    auto msg = c.ws_recv();
    ASSERT_TRUE(msg);
    json f = json::parse(*msg);
    if (f["type"] == "error") codes.push_back(f["error"]["code"]);
    if (f["type"] == "done") g_done = f;
  }
  EXPECT_EQ(codes, (std::vector<std::string>{"too_many_generations", "duplicate_id"}));
  EXPECT_EQ(g_done["id"], "g");
  EXPECT_EQ(g_done["finish_reason"], "length");
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"ok","prompt":"hi","max_tokens":2})"));
  auto last = collect(c, {"ok"});
  EXPECT_EQ(last["ok"].text, "qq");
}

TEST_F(listener_test, websocket_deep_json_is_an_error_frame_and_the_connection_goes_on) {
  opts.server.max_body_bytes = 1 << 20;
  eng.pieces.assign(4, "q");
  start();
  conn c(port);
  ASSERT_TRUE(c.ws_handshake());
  const std::string lists = std::string(100000, '[') + std::string(100000, ']');
  const std::string messages[] = {
      R"({"type":"generate","id":"a","prompt":"hi","x":)" + lists + "}",
      R"({"type":"generate","id":"a","prompt":)" + lists + "}",
      R"({"type":)" + lists + "}",
  };
  for (const std::string& m : messages) {
    ASSERT_TRUE(c.ws_send(m));
    auto msg = c.ws_recv();
    ASSERT_TRUE(msg);
    json f = json::parse(*msg);
    EXPECT_EQ(f["type"], "error");
    EXPECT_EQ(f["error"]["code"], "json_too_deep") << *msg;
  }
  // Within the limit: a badly shaped prompt and an odd type are plain, bounded 400 frames.
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"b","prompt":[[[1]]]})"));
  auto shape = c.ws_recv();
  ASSERT_TRUE(shape);
  EXPECT_EQ(json::parse(*shape)["error"]["param"], "prompt");
  ASSERT_TRUE(c.ws_send(R"({"type":")" + std::string(5000, 'z') + R"("})"));
  auto type = c.ws_recv();
  ASSERT_TRUE(type);
  EXPECT_LT(type->size(), 400u);
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"ok","prompt":"hi","max_tokens":2})"));
  EXPECT_EQ(collect(c, {"ok"})["ok"].text, "qq");
}

TEST_F(listener_test, websocket_close_cancels_every_generation) {
  eng.pieces.assign(200, "q");
  eng.delay = 10ms;
  eng.hold_after = 2;
  start();
  {
    conn c(port);
    ASSERT_TRUE(c.ws_handshake());
    ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"a","prompt":"hi","max_tokens":50})"));
    ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"b","prompt":"hi","max_tokens":50})"));
    ASSERT_TRUE(testing::wait_until([&] { return eng.submitted().size() == 2; }));  // both running
    ASSERT_TRUE(c.ws_recv());
  }
  testing::wait_until([&] { return eng.num_cancelled() >= 2; });
  EXPECT_EQ(eng.num_cancelled(), 2u);
}

// Sends `n` generate messages of `max_tokens` each and then never reads.
void flood_without_reading(conn& c, int n, int max_tokens) {
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"g)" + std::to_string(i) + R"(","prompt":"hi","max_tokens":)" +
                          std::to_string(max_tokens) + "}"));
  }
}

void wait_cancelled(fake_engine& eng, size_t n, std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (eng.num_cancelled() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
}

TEST_F(listener_test, websocket_reader_that_falls_behind_the_output_cap_is_disconnected) {
  opts.server.max_queued_output_bytes = 64 << 10;
  opts.server.write_timeout_s = 600;  // only the byte cap can act here
  eng.pieces.assign(60, std::string(128 << 10, 'q'));  // outgrows the socket buffers within ~1 s
  eng.delay = 50ms;  // each generation runs 3 s: the disconnect comes while they run
  start();
  conn c(port);
  ASSERT_TRUE(c.ws_handshake());
  flood_without_reading(c, 4, 60);
  wait_cancelled(eng, 4, 10000ms);
  EXPECT_EQ(eng.num_cancelled(), 4u);
  EXPECT_EQ(server->metrics().slow_clients().at({"ws", "queue_full"}), 1u);
}

TEST_F(listener_test, websocket_write_that_stalls_past_the_write_timeout_is_disconnected) {
  opts.server.max_queued_output_bytes = uint64_t{1} << 30;  // only the write timeout can act here
  opts.server.write_timeout_s = 0.5;
  eng.pieces.assign(60, std::string(256 << 10, 'q'));  // fills the socket buffers within ~0.5 s
  eng.delay = 50ms;
  start();
  conn c(port);
  ASSERT_TRUE(c.ws_handshake());
  flood_without_reading(c, 4, 60);
  wait_cancelled(eng, 4, 10000ms);
  EXPECT_EQ(eng.num_cancelled(), 4u);
  EXPECT_EQ(server->metrics().slow_clients().at({"ws", "write_timeout"}), 1u);
}

TEST_F(listener_test, websocket_needs_the_api_key_and_bounds_message_size) {
  opts.server.api_key = "k";
  opts.server.max_body_bytes = 256;
  start();
  conn anonymous(port);
  EXPECT_FALSE(anonymous.ws_handshake());
  conn c(port);
  ASSERT_TRUE(c.ws_handshake("Authorization: Bearer k\r\n"));
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"a","prompt":")" + std::string(1000, 'x') + "\"}"));
  EXPECT_FALSE(c.ws_recv(2000ms).has_value());  // closed: message too big
}

}  // namespace
}  // namespace troupe::test
