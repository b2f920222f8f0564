// A listener on 127.0.0.1:<ephemeral> backed by fake_engine, always stopped at the end of a test.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

#include "config/log.h"

#include "fake_engine.h"
#include "net/listener.h"
#include "support/wait_until.h"
#include "test_client.h"

namespace troupe::test {

class listener_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("TROUPE_NET_DEBUG")) set_log_level("debug");
    opts.server.port = 0;
    opts.server.header_timeout_s = 0.5;
    opts.server.idle_timeout_s = 2.0;
    opts.server.max_body_bytes = 4096;
    opts.server.max_n = 4;
    opts.ws_max_generations = 4;
  }
  void start() {
    server = std::make_unique<listener>(eng, opts, std::make_shared<fake_codec>());
    ASSERT_TRUE(server->start().ok());
    port = server->port();
    ASSERT_NE(port, 0);
  }
  void TearDown() override {
    if (server) server->stop(std::chrono::milliseconds(100));
    eng.join();
  }

  // One request on a fresh connection.
  std::optional<http_reply> request(const std::string& raw) {
    conn c(port);
    if (!c.ok() || !c.send(raw)) return std::nullopt;
    return c.read_reply();
  }

  // A completion that must succeed (the "bad request followed by a good one" check).
  void expect_good(conn& c) {
    ASSERT_TRUE(c.send(post("/v1/completions", R"({"prompt":"hi","max_tokens":2})", auth)));
    auto r = c.read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(nlohmann::json::parse(r->body)["choices"][0]["text"], "ab");
  }
  void expect_good() {
    conn c(port);
    expect_good(c);
  }

  fake_engine eng;
  listener_options opts;
  std::unique_ptr<listener> server;
  uint16_t port = 0;
  std::string auth;  // extra header lines for requests (Authorization)
};

}  // namespace troupe::test
