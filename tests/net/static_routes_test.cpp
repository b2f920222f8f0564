// The web playground's routes: GET / and /static/<name> serve the files compiled in from
// net/static with their content types, without an API key; anything else is a 404 (no path can
// reach the filesystem). Also `?api_key=` on the WebSocket upgrade, for browsers.
#include <gtest/gtest.h>

#include "listener_test_fixture.h"
#include "net/auth.h"
#include "net/static_files.h"

namespace troupe::test {
namespace {

TEST(static_files, lookup_is_by_exact_name) {
  auto index = find_static_file("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  EXPECT_NE(index->body.find("<title>troupe playground</title>"), std::string_view::npos);
  ASSERT_TRUE(find_static_file("/static/app.js"));
  EXPECT_EQ(find_static_file("/static/app.js")->content_type, "text/javascript; charset=utf-8");
  ASSERT_TRUE(find_static_file("/static/style.css"));
  EXPECT_EQ(find_static_file("/static/index.html")->body, index->body);
  for (const char* bad : {"", "/index.html", "/static/", "/static/missing.js", "/static/../routes.cpp",
                          "/static/./app.js", "/static//app.js", "/static/%2e%2e/routes.cpp", "/static/app.js/",
                          "/static/sub/app.js", "/staticapp.js", "//"}) {
    EXPECT_FALSE(find_static_file(bad)) << bad;
  }
  EXPECT_EQ(static_content_type("x.png"), "image/png");
  EXPECT_EQ(static_content_type("x.bin"), "application/octet-stream");
}

TEST(static_files, api_key_from_the_query) {
  EXPECT_EQ(bearer_from_query("/v1/ws"), "");
  EXPECT_EQ(bearer_from_query("/v1/ws?x=1"), "");
  EXPECT_EQ(bearer_from_query("/v1/ws?api_key=k"), "Bearer k");
  EXPECT_EQ(bearer_from_query("/v1/ws?a=b&api_key=s%20e%2Fc+r&c=d"), "Bearer s e/c r");
  EXPECT_EQ(bearer_from_query("/v1/ws?api_key=bad%zz"), "Bearer bad%zz");
}

TEST_F(listener_test, playground_is_served_at_the_root) {
  opts.server.api_key = "sekret";  // the page itself needs no key: it has the field to type one in
  start();
  auto r = request(get("/"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->headers["content-type"], "text/html; charset=utf-8");
  EXPECT_NE(r->body.find("/static/app.js"), std::string::npos);
  EXPECT_EQ(r->body, std::string(find_static_file("/")->body));

  const std::pair<const char*, const char*> files[] = {
      {"/static/app.js", "text/javascript; charset=utf-8"},
      {"/static/style.css", "text/css; charset=utf-8"},
      {"/static/index.html", "text/html; charset=utf-8"},
  };
  for (const auto& [path, type] : files) {
    auto f = request(get(path));
    ASSERT_TRUE(f) << path;
    EXPECT_EQ(f->status, 200) << path;
    EXPECT_EQ(f->headers["content-type"], type) << path;
    EXPECT_EQ(f->headers["content-length"], std::to_string(f->body.size())) << path;
    EXPECT_FALSE(f->body.empty()) << path;
  }
}

TEST_F(listener_test, unknown_static_files_are_404_and_paths_cannot_escape) {
  start();
  for (const char* path : {"/static/nope.js", "/static/", "/static/../net/routes.cpp", "/static/..%2Froutes.cpp",
                           "/static/%2e%2e/%2e%2e/etc/passwd", "/static/sub/app.js", "/index.html",
                           "/../../etc/passwd", "/static/app.js/"}) {
    auto r = request(get(path));
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path << ": " << r->body;
    EXPECT_EQ(r->headers["content-type"], "application/json") << path;
  }
  auto post_root = request(post("/", "{}"));
  ASSERT_TRUE(post_root);
  EXPECT_EQ(post_root->status, 405);
  expect_good();
}

std::string ws_upgrade(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

TEST_F(listener_test, websocket_takes_the_api_key_as_a_query_parameter) {
  opts.server.api_key = "k y";
  start();
  const auto status_of = [&](const std::string& target) {
    conn c(port);
    if (!c.ok() || !c.send(ws_upgrade(target))) return std::string("no connection");
    auto r = c.read_reply();
    return r ? std::to_string(r->status) : std::string("no reply");
  };
  EXPECT_EQ(status_of("/v1/ws?api_key=wrong"), "401");
  EXPECT_EQ(status_of("/v1/ws"), "401");

  conn c(port);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.send(ws_upgrade("/v1/ws?api_key=k%20y")));
  auto up = c.read_reply(std::chrono::milliseconds(300));  // 101 has no body: reads until the timeout
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 101);
  ASSERT_TRUE(c.ws_send(R"({"type":"generate","id":"a","prompt":"hi","max_tokens":1})"));
  auto frame = c.ws_recv();
  ASSERT_TRUE(frame);
  EXPECT_EQ(nlohmann::json::parse(*frame)["id"], "a") << *frame;
  // The query key is for the upgrade only: HTTP routes still need the header.
  auto models = request(get("/v1/models?api_key=k%20y"));
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 401);
}

}  // namespace
}  // namespace troupe::test
