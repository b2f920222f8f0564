// Real HTTP over loopback against the listener and a fake engine: SSE framing, non-streaming
// bodies, every error status (each followed by a request that succeeds), cancel on disconnect,
// slow headers, the operational routes.
#include <gtest/gtest.h>

#include <thread>

#include "listener_test_fixture.h"

namespace troupe::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// "data: X\n\n" events of an SSE body, in order.
std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    EXPECT_EQ(body.compare(pos, 6, "data: "), 0) << body.substr(pos);
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end + 2;
  }
  return out;
}

TEST_F(listener_test, non_streaming_completion_returns_the_whole_body) {
  start();
  auto r = request(post("/v1/completions", R"({"prompt":"hi","max_tokens":3,"n":2})"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->headers["content-type"], "application/json");
  json body = json::parse(r->body);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], "fake-model");
  ASSERT_EQ(body["choices"].size(), 2u);
  EXPECT_EQ(body["choices"][0]["text"], "abc");
  EXPECT_EQ(body["choices"][1]["text"], "abc");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["prompt_tokens"], 3);  // BOS + "hi"
  EXPECT_EQ(body["usage"]["completion_tokens"], 6);
  ASSERT_EQ(eng.submitted().size(), 1u);
  EXPECT_EQ(eng.submitted()[0].params.max_tokens, 3);
  EXPECT_EQ(eng.submitted()[0].n, 2);
}

TEST_F(listener_test, streaming_completion_is_sse_ending_with_done) {
  start();
  auto r = request(post("/v1/completions",
                        R"({"prompt":"hi","stream":true,"stream_options":{"include_usage":true}})"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->headers["content-type"], "text/event-stream");
  EXPECT_EQ(r->headers["transfer-encoding"], "chunked");
  std::vector<std::string> events = sse_events(r->body);
  ASSERT_EQ(events.size(), 6u);  // 4 tokens, usage, [DONE]
  std::string text;
  for (size_t i = 0; i < 4; ++i) {
    json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "text_completion");
    EXPECT_TRUE(chunk["usage"].is_null());
    text += chunk["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, "abcd");
  EXPECT_EQ(json::parse(events[3])["choices"][0]["finish_reason"], "stop");
  json usage = json::parse(events[4]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 4);
  EXPECT_EQ(events[5], "[DONE]");
  EXPECT_EQ(r->body.substr(r->body.size() - 14), "data: [DONE]\n\n");
}

TEST_F(listener_test, streaming_chat_sends_role_first_and_keeps_the_connection) {
  start();
  conn c(port);
  ASSERT_TRUE(c.send(post("/v1/chat/completions",
                          R"({"messages":[{"role":"user","content":"yo"}],"stream":true,"max_tokens":2})")));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  std::vector<std::string> events = sse_events(r->body);
  ASSERT_EQ(events.size(), 3u);
  json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "a");
  EXPECT_FALSE(json::parse(events[1])["choices"][0]["delta"].contains("role"));
  EXPECT_EQ(json::parse(events[1])["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(json::parse(events[1]).contains("usage"));
  expect_good(c);  // same keep-alive connection
}

TEST_F(listener_test, non_streaming_chat_with_logprobs) {
  start();
  auto r = request(post("/v1/chat/completions",
                        R"({"messages":[{"role":"user","content":"yo"}],"max_tokens":2,"logprobs":true,"top_logprobs":2})"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json body = json::parse(r->body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["message"]["content"], "ab");
  ASSERT_EQ(body["choices"][0]["logprobs"]["content"].size(), 2u);
  EXPECT_EQ(body["choices"][0]["logprobs"]["content"][0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(eng.submitted()[0].params.logprobs, 2);
}

TEST_F(listener_test, bad_requests_get_openai_errors_and_the_connection_still_serves) {
  opts.server.api_key = "sekret";
  start();
  auth = "Authorization: Bearer sekret\r\n";
  struct bad_case {
    std::string raw;
    int status;
  };
  const bad_case cases[] = {
      {post("/v1/completions", "{not json", auth), 400},
      {post("/v1/completions", R"({"prompt":"hi","temperature":"x"})", auth), 400},
      {post("/v1/completions", R"({"prompt":"hi","max_tokens":100})", auth), 400},  // beyond session_len 64
      {post("/v1/completions", R"({"prompt":"hi"})"), 401},
      {post("/v1/completions", R"({"prompt":"hi"})", "Authorization: Bearer nope\r\n"), 401},
      {post("/v1/nothing", "{}", auth), 404},
      {get("/v1/completions", auth), 405},
  };
  conn c(port);
  for (const bad_case& b : cases) {
    SCOPED_TRACE(b.raw.substr(b.raw.find("\r\n\r\n")) + " expecting " + std::to_string(b.status));
    ASSERT_TRUE(c.send(b.raw));
    auto r = c.read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, b.status) << r->body;
    json err = json::parse(r->body);
    EXPECT_TRUE(err["error"]["message"].is_string());
    EXPECT_TRUE(err["error"]["type"].is_string());
    EXPECT_TRUE(err["error"].contains("param"));
    EXPECT_TRUE(err["error"].contains("code"));
    if (b.status == 405) EXPECT_EQ(r->headers["allow"], "POST");
    expect_good(c);
  }
}

TEST_F(listener_test, oversized_body_is_413_then_a_new_connection_works) {
  start();
  std::string big = R"({"prompt":")" + std::string(5000, 'x') + R"("})";
  auto r = request(post("/v1/completions", big));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->headers["connection"], "close");
  // Chunked bodies have no Content-Length: the parser's body limit catches them.
  conn c(port);
  std::string chunked = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_TRUE(c.send(chunked + "1400\r\n" + std::string(0x1400, 'x') + "\r\n0\r\n\r\n"));
  auto r2 = c.read_reply();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 413);
  expect_good();
}

TEST_F(listener_test, overloaded_is_429_and_draining_is_503_with_retry_after) {
  start();
  eng.fail_with = make_error(errc::overloaded, "admission queue full");
  auto r = request(post("/v1/completions", R"({"prompt":"hi","stream":true})"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_FALSE(r->headers["retry-after"].empty());
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "rate_limit_error");
  eng.fail_with = make_error(errc::draining, "shutting down");
  r = request(post("/v1/completions", R"({"prompt":"hi"})"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_FALSE(r->headers["retry-after"].empty());
  eng.fail_with.reset();
  expect_good();
  auto m = request(get("/metrics"));
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("troupe:requests_rejected_total{model_name=\"fake-model\",reason=\"overloaded\"} 1"),
            std::string::npos) << m->body;
}

TEST_F(listener_test, client_disconnect_mid_stream_cancels_the_request) {
  eng.pieces.assign(200, "z");
  eng.delay = 10ms;
  eng.hold_after = 2;
  start();
  {
    conn c(port);
    ASSERT_TRUE(c.send(post("/v1/completions", R"({"prompt":"hi","stream":true,"max_tokens":50})")));
    ASSERT_TRUE(c.read_until([](const std::string& b) { return b.find("data: ") != std::string::npos; }, 5000ms));
  }  // closes the socket
  const std::string cancelled = eng.wait_cancel(20000ms);
  ASSERT_FALSE(cancelled.empty());
  EXPECT_EQ(cancelled, eng.submitted()[0].request_id);
}

TEST_F(listener_test, client_disconnect_while_waiting_for_a_non_streaming_answer_cancels) {
  eng.pieces.assign(200, "z");
  eng.delay = 10ms;
  eng.hold_after = 2;
  start();
  {
    conn c(port);
    ASSERT_TRUE(c.send(post("/v1/completions", R"({"prompt":"hi","max_tokens":50})")));
    ASSERT_TRUE(testing::wait_until([&] { return eng.submitted().size() == 1; }));  // running now
  }
  EXPECT_FALSE(eng.wait_cancel(20000ms).empty());
}

TEST_F(listener_test, slow_header_closes_the_connection) {
  start();
  conn slow(port);
  ASSERT_TRUE(slow.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"));
  // A byte every 100 ms (well inside the 0.5 s header timeout) does not extend the deadline: the
  // whole header has 0.5 s, so the server closes while the client is still dribbling. The pause
  // between bytes is the behaviour under test, and it is spent watching for the close.
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {
    closed = slow.closed_within(100ms);
    if (!closed) slow.send("X");
  }
  EXPECT_TRUE(closed);
  expect_good();
}

TEST_F(listener_test, idle_keep_alive_connection_is_closed) {
  opts.server.idle_timeout_s = 0.3;
  start();
  conn c(port);
  expect_good(c);
  EXPECT_TRUE(c.closed_within(2000ms));
}

TEST_F(listener_test, models_tokenize_detokenize) {
  start();
  auto m = request(get("/v1/models"));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  json models = json::parse(m->body);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "fake-model");
  EXPECT_EQ(models["data"][0]["max_model_len"], 64);
  auto t = request(post("/tokenize", R"({"prompt":"hey"})"));
  ASSERT_TRUE(t);
  ASSERT_EQ(t->status, 200) << t->body;
  EXPECT_EQ(json::parse(t->body)["tokens"], json({256, 'h', 'e', 'y'}));
  EXPECT_EQ(json::parse(t->body)["count"], 4);
  auto tc = request(post("/tokenize", R"({"messages":[{"role":"user","content":"x"}]})"));
  ASSERT_TRUE(tc);
  EXPECT_EQ(tc->status, 200);
  auto d = request(post("/detokenize", R"({"tokens":[104,105]})"));
  ASSERT_TRUE(d);
  ASSERT_EQ(d->status, 200) << d->body;
  EXPECT_EQ(json::parse(d->body)["prompt"], "hi");
  auto bad = request(post("/detokenize", R"({"tokens":[100000]})"));
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

// Bodies well inside the size limit that used to overflow the stack (recursive copy or dump of a
// deep value): each is a 400 naming the depth limit, and the server goes on serving.
TEST_F(listener_test, deeply_nested_json_is_a_400_on_every_json_route) {
  opts.server.max_body_bytes = 1 << 20;
  start();
  const std::string lists = std::string(100000, '[') + std::string(100000, ']');
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += R"({"a":)";
  objects += "1" + std::string(100000, '}');
  const std::pair<const char*, std::string> cases[] = {
      {"/v1/completions", R"({"prompt":"hi","x":)" + lists + "}"},
      {"/v1/completions", R"({"prompt":)" + lists + "}"},
      {"/v1/completions", R"({"prompt":"hi","x":)" + objects + "}"},
      {"/v1/chat/completions",
       R"({"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":{"k":)" + lists + "}}"},
      {"/tokenize", R"({"prompt":)" + lists + "}"},
      {"/detokenize", R"({"tokens":)" + lists + "}"},
      {"/detokenize", R"({"tokens":[)" + objects + "]}"},
  };
  for (const auto& [path, body] : cases) {
    SCOPED_TRACE(path);
    auto r = request(post(path, body));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body.substr(0, 200);
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "json_too_deep");
  }
  // A bad value inside the limit is quoted as a bounded prefix, never dumped whole.
  auto d = request(post("/detokenize", R"({"tokens":[)" + std::string(60, '[') + std::string(60, ']') + "]}"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 400);
  EXPECT_LT(d->body.size(), 300u) << d->body;
  auto s = request(post("/detokenize", R"({"tokens":[")" + std::string(5000, 'x') + "\"]}"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, 400);
  EXPECT_LT(s->body.size(), 400u);
  expect_good();
}

TEST_F(listener_test, health_ready_and_metrics) {
  start();
  auto h = request(get("/health"));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto rd = request(get("/ready"));
  ASSERT_TRUE(rd);
  EXPECT_EQ(rd->status, 200);
  eng.stats_value.busy = true;
  eng.stats_value.last_step_age_s = 1000.0;
  h = request(get("/health"));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
  eng.stats_value.busy = false;
  eng.stats_value.num_requests_running = 2;
  eng.stats_value.num_blocks_total = 10;
  eng.stats_value.num_blocks_used = 5;
  expect_good();
  auto m = request(get("/metrics"));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_EQ(m->headers["content-type"].rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_NE(m->body.find("troupe:num_requests_running{model_name=\"fake-model\"} 2"), std::string::npos);
  EXPECT_NE(m->body.find("troupe:kv_cache_usage_perc{model_name=\"fake-model\"} 0.5"), std::string::npos);
  EXPECT_NE(m->body.find("troupe:time_to_first_token_seconds_count{model_name=\"fake-model\"} 1"), std::string::npos);
  EXPECT_NE(m->body.find("troupe:e2e_request_latency_seconds_count{model_name=\"fake-model\"} 1"), std::string::npos);
  EXPECT_NE(m->body.find("troupe:memory_kv_bytes{model_name=\"fake-model\",rank=\"0\"} 3000"), std::string::npos);
  eng.stats_fail = true;
  h = request(get("/health"));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
}

TEST_F(listener_test, stop_drains_the_engine_and_closes_idle_connections) {
  start();
  conn idle(port);
  expect_good(idle);
  server->stop(std::chrono::milliseconds(100));
  EXPECT_TRUE(eng.drained());
  EXPECT_TRUE(idle.closed_within(2000ms));
  conn late(port);
  EXPECT_FALSE(late.ok() && late.send(get("/ready")) && late.read_reply(500ms).has_value());
}

TEST_F(listener_test, first_request_hook_fires_once) {
  eng.delay = 1ms;
  std::atomic<int> calls{0};
  server = std::make_unique<listener>(eng, opts, std::make_shared<fake_codec>());
  server->on_first_request_done([&] { ++calls; });
  ASSERT_TRUE(server->start().ok());
  port = server->port();
  expect_good();
  expect_good();
  EXPECT_EQ(calls.load(), 1);
}

}  // namespace
}  // namespace troupe::test
