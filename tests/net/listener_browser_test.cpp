// Browser safety over loopback: DNS rebinding (Host allow-list, 421), foreign Origins on the API
// and on /v1/ws (403), CORS for origins the operator allows, and JSON routes refusing the
// content types a page can POST cross-origin without a preflight (415).
#include <gtest/gtest.h>

#include "listener_test_fixture.h"

namespace troupe::test {
namespace {

using json = nlohmann::json;

std::string with_content_type(const std::string& type) {
  const std::string body = R"({"prompt":"hi","max_tokens":2})";
  return "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (type.empty() ? "" : "Content-Type: " + type + "\r\n") +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST_F(listener_test, a_foreign_host_is_refused_with_421) {
  start();
  const std::string p = std::to_string(port);
  auto r = request("GET /v1/models HTTP/1.1\r\nHost: rebind.evil.example:" + p + "\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 421);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "host_not_allowed");
  for (const std::string host : {"localhost:" + p, "127.0.0.1:" + p, "[::1]:" + p, std::string("127.0.0.1")}) {
    r = request("GET /v1/models HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << host;
  }
}

TEST_F(listener_test, allowed_hosts_widen_the_host_check) {
  opts.server.allowed_hosts = {"gpu-box.lan"};
  start();
  auto r = request("GET /v1/models HTTP/1.1\r\nHost: gpu-box.lan:8000\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = request("GET /v1/models HTTP/1.1\r\nHost: other.lan\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 421);
}

TEST_F(listener_test, a_foreign_origin_cannot_open_the_websocket_or_call_the_api) {
  start();
  {
    conn c(port);
    EXPECT_FALSE(c.ws_handshake("Origin: https://evil.example\r\n"));
  }
  {
    conn c(port);
    EXPECT_TRUE(c.ws_handshake("Origin: http://localhost:3000\r\n"));
  }
  {
    conn c(port);
    EXPECT_TRUE(c.ws_handshake("Origin: http://127.0.0.1:" + std::to_string(port) + "\r\n"));
  }
  auto r = request(post("/v1/completions", R"({"prompt":"hi"})", "Origin: https://evil.example\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "permission_error");
  EXPECT_TRUE(eng.submitted().empty());
}

TEST_F(listener_test, allowed_origins_get_cors_headers_and_preflights) {
  opts.server.allowed_origins = {"https://app.example"};
  start();
  auto r = request("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example\r\n"
                   "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->headers["access-control-allow-origin"], "https://app.example");
  EXPECT_EQ(r->headers["access-control-allow-methods"], "POST");
  r = request(post("/v1/completions", R"({"prompt":"hi","max_tokens":2})", "Origin: https://app.example\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["access-control-allow-origin"], "https://app.example");
  r = request(post("/v1/completions", R"({"prompt":"hi","max_tokens":2,"stream":true})",
                   "Origin: https://app.example\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["access-control-allow-origin"], "https://app.example");
  r = request(post("/v1/completions", R"({"prompt":"hi"})", "Origin: https://other.example\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_TRUE(r->headers["access-control-allow-origin"].empty());
}

TEST_F(listener_test, json_routes_refuse_bodies_a_page_can_post_without_a_preflight) {
  start();
  for (const std::string type : {std::string("text/plain"), std::string("application/x-www-form-urlencoded"),
                                 std::string("multipart/form-data; boundary=x"), std::string()}) {
    auto r = request(with_content_type(type));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 415) << type;
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "unsupported_media_type");
  }
  EXPECT_TRUE(eng.submitted().empty());
  auto r = request(with_content_type("application/json; charset=utf-8"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace
}  // namespace troupe::test
