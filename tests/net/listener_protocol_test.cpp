// HTTP/1.1 protocol edges over loopback with raw sockets: pipelining behind generations, early
// WebSocket frames sent with the upgrade, malformed chunking, transfer codings, Host, and
// `100 Continue` only once a request would be accepted.
#include <gtest/gtest.h>

#include "listener_test_fixture.h"

namespace troupe::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

TEST_F(listener_test, pipelined_requests_behind_generations_are_answered_in_order) {
  start();
  conn c(port);
  // One write: the later requests arrive in the same read as the first completion.
  ASSERT_TRUE(c.send(post("/v1/completions", R"({"prompt":"hi","max_tokens":2})") +
                     post("/v1/completions", R"({"prompt":"hi","max_tokens":3,"stream":true})") +
                     get("/health") + get("/v1/models") +
                     post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1})")));
  auto r1 = c.read_reply();
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->status, 200) << r1->body;
  EXPECT_EQ(json::parse(r1->body)["choices"][0]["text"], "ab");
  auto r2 = c.read_reply();
  ASSERT_TRUE(r2) << "a request pipelined behind a completion was never answered";
  EXPECT_EQ(r2->headers["content-type"], "text/event-stream");
  EXPECT_NE(r2->body.find("data: [DONE]"), std::string::npos) << r2->body;
  auto r3 = c.read_reply();
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->status, 200) << r3->body;
  auto r4 = c.read_reply();
  ASSERT_TRUE(r4);
  EXPECT_EQ(json::parse(r4->body)["object"], "list");
  auto r5 = c.read_reply();
  ASSERT_TRUE(r5);
  EXPECT_EQ(json::parse(r5->body)["choices"][0]["message"]["content"], "a");
  expect_good(c);  // and the connection still serves
}

TEST_F(listener_test, a_websocket_frame_sent_with_the_upgrade_is_served) {
  start();
  conn c(port);
  ASSERT_TRUE(c.send(conn::ws_upgrade() + conn::ws_frame(R"({"type":"generate","id":"a","prompt":"hi","max_tokens":2})")));
  ASSERT_TRUE(c.ws_read_handshake());
  std::string text;
  for (;;) {
    auto msg = c.ws_recv(5000ms);
    ASSERT_TRUE(msg) << "the frame sent with the upgrade request was lost";
    json f = json::parse(*msg);
    ASSERT_EQ(f["id"], "a") << *msg;
    if (f["type"] == "token") text += f["text"].get<std::string>();
    if (f["type"] == "done") break;
  }
  EXPECT_EQ(text, "ab");
}

TEST_F(listener_test, a_websocket_upgrade_pipelined_behind_a_completion_is_served) {
  start();
  conn c(port);
  ASSERT_TRUE(c.send(post("/v1/completions", R"({"prompt":"hi","max_tokens":2})") + conn::ws_upgrade() +
                     conn::ws_frame(R"({"type":"generate","id":"b","prompt":"hi","max_tokens":1})")));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ASSERT_TRUE(c.ws_read_handshake());
  auto msg = c.ws_recv(5000ms);
  ASSERT_TRUE(msg);
  EXPECT_EQ(json::parse(*msg)["id"], "b");
}

TEST_F(listener_test, malformed_chunk_size_is_400) {
  start();
  conn c(port);
  ASSERT_TRUE(c.send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"));
  auto r = c.read_reply();
  ASSERT_TRUE(r) << "closed without a response";
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "invalid_request_error");
  expect_good();
}

TEST_F(listener_test, unsupported_transfer_coding_is_501) {
  start();
  const std::string body = R"({"prompt":"hi","max_tokens":2})";
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", body.size());
  for (const char* coding : {"gzip, chunked", "deflate", "chunked, chunked"}) {
    conn c(port);
    ASSERT_TRUE(c.send(std::string("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                   "Transfer-Encoding: ") +
                       coding + "\r\n\r\n" + size + "\r\n" + body + "\r\n0\r\n\r\n"));
    auto r = c.read_reply();
    ASSERT_TRUE(r) << coding;
    EXPECT_TRUE(r->status == 501 || r->status == 400) << coding << ": " << r->status;
    if (std::string(coding) == "gzip, chunked") EXPECT_EQ(r->status, 501);
    EXPECT_FALSE(json::parse(r->body)["error"]["message"].get<std::string>().empty());
  }
  expect_good();
}

TEST_F(listener_test, http11_without_host_is_400_and_http10_needs_none) {
  start();
  auto r = request("GET /v1/models HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(json::parse(r->body)["error"]["message"].get<std::string>().find("Host"), std::string::npos);
  r = request("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = request("GET /v1/models HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(listener_test, continue_is_sent_only_once_auth_and_routing_accept) {
  opts.server.api_key = "k";
  start();
  const std::string body = R"({"prompt":"hi","max_tokens":2})";
  auto head = [&](const std::string& path, const std::string& extra) {
    return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
           "Content-Length: " + std::to_string(body.size()) + "\r\n" + extra + "\r\n";
  };
  {  // no key: the final 401 comes at once, never a 100
    conn c(port);
    ASSERT_TRUE(c.send(head("/v1/completions", "")));
    auto h = c.read_head();
    ASSERT_TRUE(h);
    EXPECT_EQ(h->substr(0, 12), "HTTP/1.1 401") << *h;
  }
  {  // unknown route
    conn c(port);
    ASSERT_TRUE(c.send(head("/v1/nothing", "Authorization: Bearer k\r\n")));
    auto h = c.read_head();
    ASSERT_TRUE(h);
    EXPECT_EQ(h->substr(0, 12), "HTTP/1.1 404") << *h;
  }
  {  // accepted: 100, then the body, then the answer
    conn c(port);
    ASSERT_TRUE(c.send(head("/v1/completions", "Authorization: Bearer k\r\n")));
    auto h = c.read_head();
    ASSERT_TRUE(h);
    EXPECT_EQ(h->substr(0, 12), "HTTP/1.1 100") << *h;
    ASSERT_TRUE(c.send(body));
    auto r = c.read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  }
}

}  // namespace
}  // namespace troupe::test
