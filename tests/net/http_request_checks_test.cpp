// The request-header checks (net/http_request_checks.h) as plain functions: framing, Host,
// Origin and Content-Type rules, each with the values a browser or an attacker would send.
#include <gtest/gtest.h>

#include "net/http_request_checks.h"

namespace troupe {
namespace {

TEST(http_request_checks, framing_allows_plain_chunked_and_needs_one_host_on_http11) {
  EXPECT_FALSE(framing_error(11, std::nullopt, 1));
  EXPECT_FALSE(framing_error(11, "chunked", 1));
  EXPECT_FALSE(framing_error(11, " Chunked ", 1));
  EXPECT_FALSE(framing_error(10, std::nullopt, 0));  // HTTP/1.0 may omit Host
  EXPECT_EQ(framing_error(11, "gzip, chunked", 1)->status, 501);
  EXPECT_EQ(framing_error(11, "gzip", 1)->status, 501);
  EXPECT_EQ(framing_error(11, "chunked, chunked", 1)->status, 501);
  EXPECT_EQ(framing_error(11, std::nullopt, 0)->status, 400);
  EXPECT_EQ(framing_error(11, std::nullopt, 2)->status, 400);
  EXPECT_EQ(framing_error(10, std::nullopt, 2)->status, 400);
}

TEST(http_request_checks, host_of_strips_the_port_and_keeps_ipv6_brackets) {
  EXPECT_EQ(host_of("Example.COM:8000"), "example.com");
  EXPECT_EQ(host_of("127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(host_of("[::1]:8000"), "[::1]");
  EXPECT_EQ(host_of("[::1]"), "[::1]");
  EXPECT_EQ(host_of("[::1"), "");
  EXPECT_EQ(host_of("[::1]x"), "");
  EXPECT_EQ(host_of("a:b:c"), "");
  EXPECT_EQ(host_of(""), "");
}

TEST(http_request_checks, loopback_server_answers_loopback_names_and_its_bound_host_only) {
  origin_policy p{"127.0.0.1", {}, {}};
  EXPECT_TRUE(host_allowed(p, "127.0.0.1:8000"));
  EXPECT_TRUE(host_allowed(p, "localhost:1234"));
  EXPECT_TRUE(host_allowed(p, "LOCALHOST"));
  EXPECT_TRUE(host_allowed(p, "[::1]:8000"));
  EXPECT_FALSE(host_allowed(p, "evil.example:8000"));  // DNS rebinding: a foreign name
  EXPECT_FALSE(host_allowed(p, "localhost.evil.example"));
  EXPECT_FALSE(host_allowed(p, ""));
  p.allowed_hosts = {"my.box"};
  EXPECT_TRUE(host_allowed(p, "my.box:8000"));
  EXPECT_FALSE(host_allowed(p, "evil.example"));
  p.allowed_hosts = {"*"};
  EXPECT_TRUE(host_allowed(p, "evil.example"));
  origin_policy named{"gpu-box.lan", {}, {}};
  EXPECT_TRUE(host_allowed(named, "GPU-BOX.lan:8000"));
  EXPECT_FALSE(host_allowed(named, "evil.example"));
  origin_policy v6{"::1", {}, {}};
  EXPECT_TRUE(host_allowed(v6, "[::1]:9000"));
}

TEST(http_request_checks, wildcard_bind_answers_any_host_unless_hosts_are_listed) {
  EXPECT_TRUE(host_allowed({"0.0.0.0", {}, {}}, "whatever.example"));
  EXPECT_TRUE(host_allowed({"::", {}, {}}, "whatever.example"));
  EXPECT_FALSE(host_allowed({"0.0.0.0", {"api.example"}, {}}, "whatever.example"));
  EXPECT_TRUE(host_allowed({"0.0.0.0", {"api.example"}, {}}, "api.example:443"));
  EXPECT_TRUE(host_allowed({"0.0.0.0", {"api.example"}, {}}, "localhost:8000"));
}

TEST(http_request_checks, origins_own_loopback_and_listed_pass) {
  origin_policy p{"127.0.0.1", {}, {}};
  EXPECT_TRUE(origin_allowed(p, "http://127.0.0.1:8000", "127.0.0.1:8000"));
  EXPECT_TRUE(origin_allowed(p, "http://localhost:3000", "127.0.0.1:8000"));  // a local dev UI
  EXPECT_TRUE(origin_allowed(p, "https://[::1]", "127.0.0.1:8000"));
  EXPECT_TRUE(origin_allowed(p, "http://gpu-box.lan:8000", "gpu-box.lan:8000"));  // same origin
  EXPECT_FALSE(origin_allowed(p, "https://evil.example", "127.0.0.1:8000"));
  EXPECT_FALSE(origin_allowed(p, "http://localhost.evil.example", "127.0.0.1:8000"));
  EXPECT_FALSE(origin_allowed(p, "null", "127.0.0.1:8000"));
  EXPECT_FALSE(origin_allowed(p, "file://", "127.0.0.1:8000"));
  EXPECT_FALSE(origin_allowed(p, "http://127.0.0.1:8000/x", "127.0.0.1:8000"));
  p.allowed_origins = {"https://app.example"};
  EXPECT_TRUE(origin_allowed(p, "https://APP.example", "127.0.0.1:8000"));
  EXPECT_FALSE(origin_allowed(p, "http://app.example", "127.0.0.1:8000"));  // scheme matters
  p.allowed_origins = {"*"};
  EXPECT_TRUE(origin_allowed(p, "https://evil.example", "127.0.0.1:8000"));
}

TEST(http_request_checks, only_application_json_is_json) {
  EXPECT_TRUE(is_json_content_type("application/json"));
  EXPECT_TRUE(is_json_content_type("Application/JSON; charset=utf-8"));
  EXPECT_FALSE(is_json_content_type("text/plain"));
  EXPECT_FALSE(is_json_content_type("application/x-www-form-urlencoded"));
  EXPECT_FALSE(is_json_content_type("multipart/form-data; boundary=x"));
  EXPECT_FALSE(is_json_content_type(""));
  EXPECT_FALSE(is_json_content_type("application/jsonx"));
}

}  // namespace
}  // namespace troupe
