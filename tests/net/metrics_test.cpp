// Prometheus text format of /metrics: HELP/TYPE once per family, cumulative buckets ending in +Inf,
// _sum/_count, engine gauges from a stats snapshot, the memory plan per rank, rejection counters.
#include "net/metrics.h"

#include <gtest/gtest.h>

#include <sstream>
#include <thread>
#include <vector>

#include "net/auth.h"

namespace troupe {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

TEST(histogram, buckets_are_cumulative_with_sum_and_count) {
  server_metrics m;
  m.time_to_first_token.observe(0.003);   // le 0.005
  m.time_to_first_token.observe(0.05);    // le 0.06
  m.time_to_first_token.observe(10000.0); // only +Inf
  std::string text = render_metrics(m, {nullptr, nullptr, "m"});
  const std::string n = "troupe:time_to_first_token_seconds";
  EXPECT_TRUE(has_line(text, "# TYPE " + n + " histogram"));
  EXPECT_TRUE(has_line(text, n + "_bucket{model_name=\"m\",le=\"0.001\"} 0"));
  EXPECT_TRUE(has_line(text, n + "_bucket{model_name=\"m\",le=\"0.005\"} 1"));
  EXPECT_TRUE(has_line(text, n + "_bucket{model_name=\"m\",le=\"0.06\"} 2"));
  EXPECT_TRUE(has_line(text, n + "_bucket{model_name=\"m\",le=\"2560\"} 2"));
  EXPECT_TRUE(has_line(text, n + "_bucket{model_name=\"m\",le=\"+Inf\"} 3"));
  EXPECT_TRUE(has_line(text, n + "_count{model_name=\"m\"} 3"));
  EXPECT_TRUE(has_line(text, n + "_sum{model_name=\"m\"} 10000.053"));
}

// observe() runs on every session's thread once per token: no observation may be lost.
TEST(histogram, concurrent_observations_all_count) {
  histogram h({0.1, 1.0});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i) h.observe(t % 2 ? 0.5 : 0.0625);  // exact in binary
    });
  for (auto& t : threads) t.join();
  const auto s = h.snap();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_EQ(s.counts[0], 20000u);  // 0.0625 <= 0.1
  EXPECT_EQ(s.counts[1], 20000u);  // 0.5 <= 1.0
  EXPECT_EQ(s.counts[2], 0u);
  EXPECT_DOUBLE_EQ(s.sum, 20000 * 0.5 + 20000 * 0.0625);
}

TEST(render_metrics, writes_engine_plan_and_rejections) {
  server_metrics m;
  m.count_rejection("overloaded");
  m.count_rejection("overloaded");
  m.count_rejection("invalid");
  m.count_slow_client("http", "write_timeout");
  engine_stats s;
  s.num_requests_running = 3;
  s.num_requests_waiting = 2;
  s.num_blocks_total = 200;
  s.num_blocks_used = 50;
  s.num_blocks_cached = 7;
  s.prefix_cache_queries = 100;
  s.prefix_cache_hits = 40;
  s.num_preemptions = 1;
  s.prompt_tokens_total = 1234;
  s.generation_tokens_total = 99;
  memory_plan plan;
  plan.max_concurrent_requests = 256;
  for (int r = 0; r < 2; ++r) {
    rank_plan rp;
    rp.rank = r;
    rp.weights_bytes = 1000 + r;
    rp.reserve_bytes = 10;
    rp.kv_bytes = 1 << 20;
    plan.ranks.push_back(rp);
  }
  std::string text = render_metrics(m, {&s, &plan, "tiny \"q\""});
  const std::string label = "model_name=\"tiny \\\"q\\\"\"";
  EXPECT_TRUE(has_line(text, "# HELP troupe:num_requests_running Number of requests in model execution batches."));
  EXPECT_TRUE(has_line(text, "# TYPE troupe:num_requests_running gauge"));
  EXPECT_TRUE(has_line(text, "troupe:num_requests_running{" + label + "} 3"));
  EXPECT_TRUE(has_line(text, "troupe:num_requests_waiting{" + label + "} 2"));
  EXPECT_TRUE(has_line(text, "troupe:kv_cache_usage_perc{" + label + "} 0.25"));
  EXPECT_TRUE(has_line(text, "troupe:kv_blocks_cached{" + label + "} 7"));
  EXPECT_TRUE(has_line(text, "# TYPE troupe:prefix_cache_hits_total counter"));
  EXPECT_TRUE(has_line(text, "troupe:prefix_cache_hits_total{" + label + "} 40"));
  EXPECT_TRUE(has_line(text, "troupe:prefix_cache_queries_total{" + label + "} 100"));
  EXPECT_TRUE(has_line(text, "troupe:num_preemptions_total{" + label + "} 1"));
  EXPECT_TRUE(has_line(text, "troupe:prompt_tokens_total{" + label + "} 1234"));
  EXPECT_TRUE(has_line(text, "troupe:generation_tokens_total{" + label + "} 99"));
  EXPECT_TRUE(has_line(text, "troupe:memory_weights_bytes{" + label + ",rank=\"1\"} 1001"));
  EXPECT_TRUE(has_line(text, "troupe:memory_kv_bytes{" + label + ",rank=\"0\"} 1048576"));
  EXPECT_TRUE(has_line(text, "troupe:max_concurrent_requests{" + label + "} 256"));
  EXPECT_TRUE(has_line(text, "troupe:requests_rejected_total{" + label + ",reason=\"overloaded\"} 2"));
  EXPECT_TRUE(has_line(text, "troupe:requests_rejected_total{" + label + ",reason=\"invalid\"} 1"));
  EXPECT_TRUE(has_line(text, "troupe:slow_client_disconnects_total{" + label +
                                 ",protocol=\"http\",reason=\"write_timeout\"} 1"));
  EXPECT_TRUE(has_line(text, "troupe:slow_client_disconnects_total{" + label + ",protocol=\"ws\",reason=\"queue_full\"} 0"));
  // Every family's TYPE line appears exactly once.
  size_t pos = 0, count = 0;
  while ((pos = text.find("# TYPE troupe:memory_weights_bytes ", pos)) != std::string::npos) ++count, ++pos;
  EXPECT_EQ(count, 1u);
  EXPECT_EQ(text.back(), '\n');
}

TEST(render_metrics, omits_engine_gauges_when_stats_are_unavailable) {
  server_metrics m;
  std::string text = render_metrics(m, {nullptr, nullptr, "m"});
  EXPECT_EQ(text.find("troupe:num_requests_running"), std::string::npos);
  EXPECT_NE(text.find("troupe:e2e_request_latency_seconds_count"), std::string::npos);
}

TEST(request_timing, observes_ttft_itl_queue_and_e2e) {
  server_metrics m;
  request_timing t(m, 1);
  generation_event ev;
  ev.token_ids = {1};
  ev.queue_time_s = 0.4;
  t.on_event(ev);
  ev.token_ids = {2, 3};
  t.on_event(ev);
  t.on_done();
  t.on_done();  // once only
  EXPECT_EQ(m.time_to_first_token.snap().count, 1u);
  EXPECT_EQ(m.inter_token_latency.snap().count, 2u);  // one per token of the second event
  EXPECT_EQ(m.request_queue_time.snap().count, 1u);
  EXPECT_DOUBLE_EQ(m.request_queue_time.snap().sum, 0.4);
  EXPECT_EQ(m.e2e_request_latency.snap().count, 1u);
}

TEST(prom_number, formats_like_prometheus) {
  EXPECT_EQ(prom_number(0.25), "0.25");
  EXPECT_EQ(prom_number(3), "3");
  EXPECT_EQ(prom_number(1.0 / 0.0), "+Inf");
}

TEST(auth, bearer_token_compared_exactly) {
  EXPECT_TRUE(authorized("", ""));
  EXPECT_TRUE(authorized("k1", "Bearer k1"));
  EXPECT_TRUE(authorized("k1", "bearer  k1 "));
  EXPECT_FALSE(authorized("k1", "Bearer k2"));
  EXPECT_FALSE(authorized("k1", "Bearer k1x"));
  EXPECT_FALSE(authorized("k1", "Bearer k"));
  EXPECT_FALSE(authorized("k1", "k1"));
  EXPECT_FALSE(authorized("k1", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
}

}  // namespace
}  // namespace troupe
