// Cluster mode's pure logic: which worker a request goes to, when a worker is refused, and how
// worker addresses parse. Each expectation says why.
#include "actors/cluster_routing.h"

#include <gtest/gtest.h>

namespace troupe {
namespace {

worker_load up_worker(int64_t in_flight, int32_t max_concurrent = 4, int32_t max_queued = 2) {
  worker_load w;
  w.up = true;
  w.max_concurrent = max_concurrent;
  w.max_queued = max_queued;
  w.num_in_flight = in_flight;
  w.num_blocks_total = 100;
  return w;
}

TEST(cluster_routing, picks_the_worker_with_the_most_free_slots) {
  std::vector<worker_load> ws = {up_worker(3), up_worker(1), up_worker(2)};
  EXPECT_EQ(pick_worker(ws), 1u);  // 3 free slots beat 1 and 2
}

TEST(cluster_routing, free_slots_count_against_each_workers_own_limit) {
  std::vector<worker_load> ws = {up_worker(2, 4), up_worker(5, 16)};
  EXPECT_EQ(pick_worker(ws), 1u);  // 11 free of 16 beat 2 free of 4, although it runs more
}

TEST(cluster_routing, equal_slots_prefer_more_free_kv_cache) {
  std::vector<worker_load> ws = {up_worker(1), up_worker(1)};
  ws[0].num_blocks_used = 80;
  ws[1].num_blocks_used = 10;
  EXPECT_EQ(pick_worker(ws), 1u);
}

TEST(cluster_routing, equal_workers_take_turns) {
  std::vector<worker_load> ws = {up_worker(0), up_worker(0)};
  ws[0].num_routed = 5;
  ws[1].num_routed = 4;
  EXPECT_EQ(pick_worker(ws), 1u);  // fewer routed so far
  ws[1].num_routed = 6;
  EXPECT_EQ(pick_worker(ws), 0u);
}

TEST(cluster_routing, skips_workers_that_are_not_up) {
  std::vector<worker_load> ws = {up_worker(0), up_worker(3)};
  ws[0].up = false;  // down or refused: never chosen, however idle it looks
  EXPECT_EQ(pick_worker(ws), 1u);
}

TEST(cluster_routing, a_worker_with_full_slots_but_queue_room_is_still_chosen) {
  std::vector<worker_load> ws = {up_worker(5, 4, 2)};  // 4 running + 1 queued of 2
  EXPECT_EQ(pick_worker(ws), 0u);
}

TEST(cluster_routing, no_choice_when_every_worker_is_full_or_none_is_up) {
  std::vector<worker_load> full = {up_worker(6, 4, 2), up_worker(7, 4, 2)};  // slots + queue exhausted
  EXPECT_FALSE(pick_worker(full).has_value());
  std::vector<worker_load> none = {up_worker(0)};
  none[0].up = false;
  EXPECT_FALSE(pick_worker(none).has_value());
  EXPECT_FALSE(pick_worker({}).has_value());
}

TEST(cluster_routing, a_cached_prefix_wins_while_its_worker_is_not_much_busier) {
  std::vector<worker_load> ws = {up_worker(0, 16), up_worker(2, 16)};
  ws[1].prefix_depth = 3;
  EXPECT_EQ(pick_worker(ws), 1u);  // 2 more in flight is within the slack: reuse its cache
  ws[1].num_in_flight = 1 + k_prefix_slack;
  EXPECT_EQ(pick_worker(ws), 0u);  // too much busier: load wins, the hot prefix spreads
}

TEST(cluster_routing, the_deepest_prefix_wins_and_a_full_worker_never_does) {
  std::vector<worker_load> ws = {up_worker(0, 8), up_worker(0, 8), up_worker(0, 8)};
  ws[0].prefix_depth = 1;
  ws[1].prefix_depth = 4;
  EXPECT_EQ(pick_worker(ws), 1u);
  ws[1].num_in_flight = 8;  // no free slot (it would queue): affinity does not apply
  EXPECT_EQ(pick_worker(ws), 0u);
}

TEST(cluster_routing, prefix_hashes_are_chained_over_full_blocks) {
  std::vector<int32_t> a(40), b(40);
  for (int i = 0; i < 40; ++i) a[i] = b[i] = i;
  b[20] = 999;  // differs in the second block of 16
  auto ha = prefix_hashes(a, 16, 8), hb = prefix_hashes(b, 16, 8);
  ASSERT_EQ(ha.size(), 2u);  // 40 tokens: two full blocks of 16; the tail is not hashed
  EXPECT_EQ(ha[0], hb[0]);   // same first block
  EXPECT_NE(ha[1], hb[1]);   // different second block
  EXPECT_TRUE(prefix_hashes(std::vector<int32_t>(15, 1), 16, 8).empty());  // shorter than a block
  EXPECT_EQ(prefix_hashes(a, 4, 3).size(), 3u);                             // capped at max_levels
}

cluster_identity identity(std::string shape, uint64_t tok = 7) {
  return cluster_identity{"troupe 0.1.0, protocol 1", "tiny", std::move(shape), tok};
}

TEST(cluster_identity, equal_identities_match_even_with_other_model_names) {
  cluster_identity a = identity("llama vocab=256"), b = identity("llama vocab=256");
  b.model_name = "renamed-copy";  // the API name may differ; the shape and tokenizer may not
  EXPECT_FALSE(identity_mismatch(a, b).has_value());
}

TEST(cluster_identity, a_version_mismatch_is_refused_and_says_so) {
  cluster_identity a = identity("x"), b = identity("x");
  b.version = "troupe 0.2.0, protocol 2";
  auto why = identity_mismatch(a, b);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("version mismatch"), std::string::npos);
  EXPECT_NE(why->find("0.2.0"), std::string::npos);
}

TEST(cluster_identity, a_model_or_tokenizer_mismatch_is_refused_and_says_so) {
  auto shape = identity_mismatch(identity("llama vocab=256"), identity("qwen2 vocab=300"));
  ASSERT_TRUE(shape.has_value());
  EXPECT_NE(shape->find("model mismatch"), std::string::npos);
  EXPECT_NE(shape->find("qwen2 vocab=300"), std::string::npos);
  auto tok = identity_mismatch(identity("x", 1), identity("x", 2));
  ASSERT_TRUE(tok.has_value());
  EXPECT_NE(tok->find("tokenizer mismatch"), std::string::npos);
}

TEST(cluster_identity, is_built_from_the_model_shape) {
  model_config a;
  a.architecture = "llama";
  a.vocab_size = 256;
  a.num_layers = 2;
  model_config b = a;
  b.num_layers = 3;
  EXPECT_FALSE(identity_mismatch(make_cluster_identity(a, nullptr), make_cluster_identity(a, nullptr)));
  EXPECT_TRUE(identity_mismatch(make_cluster_identity(a, nullptr), make_cluster_identity(b, nullptr)));
}

TEST(cluster_address, parses_host_and_port) {
  auto a = parse_host_port("127.0.0.1:8001");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8001);
  auto v6 = parse_host_port("[::1]:9");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->to_string(), "[::1]:9");
}

TEST(cluster_address, rejects_missing_or_bad_ports) {
  for (const char* bad : {"host", ":80", "host:", "host:0", "host:65536", "host:80x", "[]:80"}) {
    auto r = parse_host_port(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.err().message.find("host:port"), std::string::npos) << bad;
    }
  }
}

}  // namespace
}  // namespace troupe
