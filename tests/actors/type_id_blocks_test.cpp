// The CAF type-ID blocks of one process: a worker node in cluster mode with extensions loaded holds
// troupe_api, troupe_ext, troupe and troupe_cluster at once. Each block has its own range (this
// file including both cluster_messages.h and extension.h did not even compile while troupe_ext and
// troupe_cluster both started at troupe::end), every id maps to its own type, and messages of the
// extension and cluster protocols round-trip through the serializer of one such system.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <typeindex>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/message.hpp>

#include "actors/cluster_messages.h"
#include "troupe/extension.h"

namespace troupe {
namespace {

struct id_entry {
  caf::type_id_t id;
  std::string name;        // the block's name for the id
  std::type_index type;    // the C++ type the id stands for
};

template <class Block>
std::vector<id_entry> ids_of() {
  std::vector<id_entry> out;
  [&]<caf::type_id_t... Is>(std::integer_sequence<caf::type_id_t, Is...>) {
    (out.push_back({static_cast<caf::type_id_t>(Block::begin + Is), caf::type_name_by_id<Block::begin + Is>::value,
                    std::type_index(typeid(typename caf::type_by_id<Block::begin + Is>::type))}),
     ...);
  }(std::make_integer_sequence<caf::type_id_t, Block::end - Block::begin>{});
  return out;
}

std::vector<id_entry> all_ids() {
  std::vector<id_entry> all;
  for (auto block : {ids_of<caf::id_block::troupe_api>(), ids_of<caf::id_block::troupe_ext>(),
                     ids_of<caf::id_block::troupe>(), ids_of<caf::id_block::troupe_cluster>()})
    all.insert(all.end(), block.begin(), block.end());
  return all;
}

// The blocks' documented ranges (include/troupe/messages.h).
static_assert(caf::id_block::troupe_api::begin == caf::first_custom_type_id);
static_assert(caf::id_block::troupe_ext::begin >= caf::id_block::troupe_api::end);
static_assert(caf::id_block::troupe_ext::end <= first_internal_type_id);
static_assert(caf::id_block::troupe::begin >= first_internal_type_id);
static_assert(caf::id_block::troupe_cluster::begin >= caf::id_block::troupe::end);
static_assert(caf::id_block::troupe_cluster::end <= first_user_type_id);

void register_worker_with_extensions(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::troupe_api>();
  cfg.add_message_types<caf::id_block::troupe_ext>();
  cfg.add_message_types<caf::id_block::troupe>();
  cfg.add_message_types<caf::id_block::troupe_cluster>();
}

TEST(type_id_blocks, every_id_of_every_block_is_unique_and_names_one_type) {
  auto all = all_ids();
  std::set<caf::type_id_t> ids;
  std::set<std::type_index> types;
  for (const auto& e : all) {
    EXPECT_TRUE(ids.insert(e.id).second) << "type id " << e.id << " (" << e.name << ") is used twice";
    EXPECT_TRUE(types.insert(e.type).second) << e.name << " has two type ids";
  }
  // Spot checks that each block names its own types at its own ids.
  EXPECT_STREQ(caf::type_name_by_id<caf::type_id<troupe::generation_event>::value>::value, "troupe::generation_event");
  EXPECT_STREQ(caf::type_name_by_id<caf::type_id<troupe::filter_request>::value>::value, "troupe::filter_request");
  EXPECT_STREQ(caf::type_name_by_id<caf::type_id<troupe::step_batch>::value>::value, "troupe::step_batch");
  EXPECT_STREQ(caf::type_name_by_id<caf::type_id<troupe::worker_hello>::value>::value, "troupe::worker_hello");
}

TEST(type_id_blocks, a_worker_with_extensions_registers_each_type_under_its_own_name) {
  caf::actor_system_config cfg;
  register_worker_with_extensions(cfg);
  auto all = all_ids();
  for (const auto& e : all) {
    auto it = cfg.type_names_by_rtti.find(e.type);
    ASSERT_NE(it, cfg.type_names_by_rtti.end()) << e.name << " is not registered";
    EXPECT_EQ(it->second, e.name) << "type id " << e.id;
  }
}

TEST(type_id_blocks, extension_and_cluster_messages_round_trip_in_one_system) {
  caf::actor_system_config cfg;
  register_worker_with_extensions(cfg);
  caf::actor_system sys{cfg};

  filter_request fr;
  fr.request.request_id = "r1";
  fr.request.prompt_ids = {1, 2, 3};
  fr.request.params.temperature = 0.25f;
  fr.http.method = "POST";
  fr.http.headers = {{"x-tenant", "a"}};
  cluster_identity ci;
  ci.version = "troupe test";
  ci.model_shape = "llama layers=2";
  ci.tokenizer_fingerprint = 0x1234;
  generation_event ev;
  ev.token_ids = {5, 6};
  ev.finish = finish_reason::length;
  auto msg = caf::make_message(fr, ci, ev);

  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  ASSERT_FALSE(sink(msg)) << "serialize";
  caf::message back;
  caf::binary_deserializer source{sys, buf};
  ASSERT_FALSE(source(back)) << "deserialize";

  ASSERT_TRUE((back.match_elements<filter_request, cluster_identity, generation_event>()));
  const auto& fr2 = back.get_as<filter_request>(0);
  EXPECT_EQ(fr2.request.request_id, "r1");
  EXPECT_EQ(fr2.request.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(fr2.request.params.temperature, 0.25f);
  ASSERT_EQ(fr2.http.headers.size(), 1u);
  EXPECT_EQ(fr2.http.headers[0].value, "a");
  const auto& ci2 = back.get_as<cluster_identity>(1);
  EXPECT_EQ(ci2.version, "troupe test");
  EXPECT_EQ(ci2.model_shape, "llama layers=2");
  EXPECT_EQ(ci2.tokenizer_fingerprint, 0x1234u);
  const auto& ev2 = back.get_as<generation_event>(2);
  EXPECT_EQ(ev2.token_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(ev2.finish, finish_reason::length);
}

TEST(type_id_blocks, a_requests_constraint_spec_crosses_nodes_but_its_compiled_form_does_not) {
  caf::actor_system_config cfg;
  register_worker_with_extensions(cfg);
  caf::actor_system sys{cfg};
  auto round_trip = [&](const generation_request& req, generation_request& out) {
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    if (auto err = sink(caf::make_message(req))) return err;
    caf::message back;
    caf::binary_deserializer source{sys, buf};
    if (auto err = source(back)) return err;
    if (!back.match_elements<generation_request>()) return caf::make_error(caf::sec::invalid_argument);
    out = back.get_as<generation_request>(0);
    return caf::error{};
  };
  generation_request req;
  req.request_id = "r";
  req.constraint = {constraint_spec::kind::json_schema, R"({"type":"object"})"};
  req.compiled = std::shared_ptr<const compiled_constraint>(nullptr);
  generation_request back;
  ASSERT_FALSE(round_trip(req, back));
  EXPECT_EQ(back.constraint, req.constraint);
  EXPECT_EQ(back.compiled, nullptr) << "a remote node compiles the spec itself";

  generation_request bogus = req;
  bogus.constraint.type = static_cast<constraint_spec::kind>(99);  // a peer sending a kind that does not exist
  EXPECT_TRUE(round_trip(bogus, back)) << "refused, never cast into a bogus kind";
}

}  // namespace
}  // namespace troupe
