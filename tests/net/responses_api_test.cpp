// The Responses API without sockets: request parsing and its mapping onto a chat generation
// (input items, instructions, history, truncation), the event order and shapes of a response, and
// the store's bounds (size, age), ownership and eviction callback.
#include "net/responses_api.h"

#include <gtest/gtest.h>

#include <set>

#include "fake_engine.h"
#include "net/response_store.h"
#include "net/responses_events.h"
#include "net/responses_service.h"

namespace troupe {
namespace {

using json = nlohmann::json;

class responses_api_test : public ::testing::Test {
 protected:
  test::fake_codec codec;
  api_context ctx{&codec, 200, 512, 4, "m"};

  responses_params ok(const json& body, bool ws = false) {
    auto r = parse_responses_body(body, ws);
    if (is_error(r)) ADD_FAILURE() << std::get<api_error>(r).message;
    return is_error(r) ? responses_params{} : std::get<responses_params>(r);
  }
  api_error bad(const json& body) {
    auto r = parse_responses_body(body, false);
    EXPECT_TRUE(is_error(r)) << body.dump();
    return is_error(r) ? std::get<api_error>(r) : api_error{};
  }
  std::string prompt_text(const openai_request& r) { return codec.decode(r.gen.prompt_ids, false).value(); }
};

TEST_F(responses_api_test, string_input_is_one_user_message_rendered_after_the_instructions) {
  responses_params p = ok({{"input", "hi"}, {"instructions", "be brief"}, {"max_output_tokens", 7},
                           {"temperature", 0.5}, {"top_p", 0.9}, {"store", false}, {"metadata", {{"k", "v"}}}});
  ASSERT_EQ(p.input_items.size(), 1u);
  EXPECT_EQ(p.input_items[0]["role"], "user");
  EXPECT_TRUE(p.input_items[0]["id"].get<std::string>().starts_with("msg_"));
  EXPECT_FALSE(p.store);
  EXPECT_EQ(p.metadata["k"], "v");
  auto g = build_responses_generation(p, json::array(), ctx);
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  const openai_request& r = std::get<openai_request>(g);
  EXPECT_EQ(prompt_text(r), "<|system|>be brief\n<|user|>hi\n<|assistant|>");
  EXPECT_EQ(r.gen.params.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.gen.params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.gen.params.top_p, 0.9f);
}

TEST_F(responses_api_test, history_comes_before_the_input_and_developer_is_a_system_message) {
  responses_params p = ok({{"input", json::array({{{"role", "developer"}, {"content", "rules"}},
                                                  {{"type", "message"}, {"role", "user"},
                                                   {"content", json::array({{{"type", "input_text"}, {"text", "q2"}}})}}})}});
  json history = json::array({{{"role", "user"}, {"content", "q1"}}, {{"role", "assistant"}, {"content", "a1"}}});
  auto g = build_responses_generation(p, history, ctx);
  ASSERT_FALSE(is_error(g));
  EXPECT_EQ(prompt_text(std::get<openai_request>(g)), "<|user|>q1\n<|assistant|>a1\n<|system|>rules\n<|user|>q2\n<|assistant|>");
}

TEST_F(responses_api_test, truncation_auto_drops_the_oldest_history_and_disabled_refuses) {
  json history = json::array();
  for (int i = 0; i < 8; ++i) history.push_back({{"role", "user"}, {"content", std::string(30, 'x')}});
  responses_params p = ok({{"input", "end"}, {"max_output_tokens", 20}});
  auto refused = build_responses_generation(p, history, ctx);
  ASSERT_TRUE(is_error(refused));
  EXPECT_EQ(std::get<api_error>(refused).status, 400);
  EXPECT_EQ(std::get<api_error>(refused).code, "context_too_long");
  p.truncation = "auto";
  size_t kept = 99;
  auto g = build_responses_generation(p, history, ctx, &kept);
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  EXPECT_LT(kept, history.size());
  EXPECT_GT(kept, 0u);
  EXPECT_LE(std::get<openai_request>(g).gen.prompt_ids.size() + 20, 200u);
}

// Whatever the room, truncation never keeps a function_call_output whose function_call it dropped
// (they go together, oldest first), and never drops a call the new input answers.
TEST_F(responses_api_test, truncation_auto_drops_a_function_call_with_its_outputs) {
  auto call = [](const std::string& id) {
    return json{{"role", "assistant"}, {"content", ""},
                {"tool_calls", json::array({{{"id", id}, {"type", "function"},
                                             {"function", {{"name", "f"}, {"arguments", "{}"}}}}})}};
  };
  auto output = [](const std::string& id) {
    return json{{"role", "tool"}, {"tool_call_id", id}, {"content", std::string(12, 'o')}};
  };
  json history = json::array();
  for (int t = 0; t < 4; ++t) {
    const std::string id = "c" + std::to_string(t);
    history.push_back({{"role", "user"}, {"content", std::string(12, 'u')}});
    history.push_back(call(id));
    history.push_back(output(id));
    history.push_back(output(id));  // a second output of the same call (a retried tool)
    history.push_back({{"role", "assistant"}, {"content", std::string(12, 'a')}});
  }
  history.push_back(call("c9"));  // the input below answers it
  responses_params p = ok({{"input", json::array({{{"type", "function_call_output"}, {"call_id", "c9"}, {"output", "r"}}})},
                           {"max_output_tokens", 8}, {"truncation", "auto"}});
  int num_truncated = 0;
  for (int32_t session_len = 40; session_len <= 600; session_len += 7) {
    const api_context small{&codec, session_len, 512, 4, "m"};
    size_t kept = 0;
    auto g = build_responses_generation(p, history, small, &kept);
    if (is_error(g)) {
      EXPECT_EQ(std::get<api_error>(g).code, "context_too_long") << session_len;
      continue;
    }
    ASSERT_GE(kept, 1u) << "the answered call c9 was dropped at session_len " << session_len;
    if (kept < history.size()) ++num_truncated;
    std::set<std::string> calls;
    for (size_t i = history.size() - kept; i < history.size(); ++i) {
      const json& m = history[i];
      if (m.contains("tool_calls")) calls.insert(m["tool_calls"][0]["id"].get<std::string>());
      if (m["role"] == "tool") {
        EXPECT_TRUE(calls.count(m["tool_call_id"].get<std::string>()))
            << "orphaned output of " << m["tool_call_id"] << " at session_len " << session_len << ", kept " << kept;
      }
    }
  }
  EXPECT_GT(num_truncated, 3);  // the sweep did cut the history at several places
}

// The grammar generates a schema's properties in the order they were sent (as on chat): the
// Responses body keeps the client's order of text.format.schema and of each tool's parameters.
TEST_F(responses_api_test, schema_and_tool_parameters_keep_the_clients_property_order) {
  const std::string raw = R"({"input": "x", "text": {"format": {"type": "json_schema", "name": "s",
      "schema": {"type": "object", "properties": {"zeta": {"type": "string"}, "alpha": {"type": "integer"},
                 "mid": {"type": "boolean"}}, "required": ["zeta", "alpha", "mid"]}}}})";
  auto order = [](const std::string& text) {
    const size_t z = text.find("zeta"), a = text.find("alpha"), m = text.find("mid");
    return z != std::string::npos && z < a && a < m && m != std::string::npos;
  };
  auto parsed = parse_responses_body(json::parse(raw), false, raw);
  ASSERT_FALSE(is_error(parsed));
  auto g = build_responses_generation(std::get<responses_params>(parsed), json::array(), ctx);
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  EXPECT_TRUE(order(std::get<openai_request>(g).gen.constraint.text)) << std::get<openai_request>(g).gen.constraint.text;
  // Without the raw text the order is nlohmann's (sorted): the case the raw text is there for.
  g = build_responses_generation(ok(json::parse(raw)), json::array(), ctx);
  ASSERT_FALSE(is_error(g));
  EXPECT_FALSE(order(std::get<openai_request>(g).gen.constraint.text));

  const std::string tools = R"({"input": "x", "tool_choice": "required", "tools": [{"type": "function", "name": "f",
      "parameters": {"type": "object", "properties": {"zeta": {"type": "string"}, "alpha": {"type": "integer"},
                     "mid": {"type": "boolean"}}, "required": ["zeta", "alpha", "mid"]}}]})";
  parsed = parse_responses_body(json::parse(tools), false, tools);
  ASSERT_FALSE(is_error(parsed));
  g = build_responses_generation(std::get<responses_params>(parsed), json::array(), api_context{&codec, 4000, 512, 4, "m"});
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  EXPECT_TRUE(order(std::get<openai_request>(g).gen.constraint.text)) << std::get<openai_request>(g).gen.constraint.text;
}

TEST_F(responses_api_test, bad_fields_are_400s_naming_the_field) {
  EXPECT_EQ(bad(json::object()).param, "input");
  EXPECT_EQ(bad(json::array()).status, 400);
  EXPECT_EQ(bad({{"input", 3}}).param, "input");
  EXPECT_EQ(bad({{"input", json::array()}}).param, "input");
  EXPECT_EQ(bad({{"input", json::array({{{"role", "wizard"}, {"content", "x"}}})}}).param, "input[0].role");
  EXPECT_EQ(bad({{"input", json::array({{{"type", "item_reference"}, {"id", "x"}}})}}).param, "input[0].type");
  EXPECT_EQ(bad({{"input", json::array({{{"role", "user"}, {"content", json::array({{{"type", "input_image"}}})}}})}}).code,
            "unsupported");
  EXPECT_EQ(bad({{"input", "x"}, {"store", "yes"}}).param, "store");
  EXPECT_EQ(bad({{"input", "x"}, {"max_output_tokens", 0}}).param, "max_output_tokens");
  EXPECT_EQ(bad({{"input", "x"}, {"truncation", "sometimes"}}).param, "truncation");
  EXPECT_EQ(bad({{"input", "x"}, {"metadata", {{"k", 1}}}}).param, "metadata");
  EXPECT_EQ(bad({{"input", "x"}, {"previous_response_id", 5}}).param, "previous_response_id");
  EXPECT_EQ(bad({{"input", "x"}, {"tools", json::array({{{"type", "web_search"}}})}}).param, "tools[0].type");
  EXPECT_EQ(bad({{"input", "x"}, {"text", {{"format", {{"type", "json_schema"}, {"name", "n"}}}}}}).param,
            "text.format.schema");
  EXPECT_EQ(bad({{"input", "x"}, {"background", true}}).code, "unsupported");
}

TEST_F(responses_api_test, sampling_ranges_are_checked_with_responses_names) {
  responses_params p = ok({{"input", "x"}, {"max_output_tokens", 100000}});
  auto g = build_responses_generation(p, json::array(), ctx);
  ASSERT_TRUE(is_error(g));
  EXPECT_EQ(std::get<api_error>(g).param, "max_output_tokens");
  p = ok({{"input", "x"}, {"temperature", -1}});
  g = build_responses_generation(p, json::array(), ctx);
  ASSERT_TRUE(is_error(g));
  EXPECT_EQ(std::get<api_error>(g).param, "temperature");
}

// `seed` is troupe's extension (as vLLM's): it reaches the sampler, so seeded sampling answers alike.
TEST_F(responses_api_test, a_seed_reaches_the_sampling_parameters_and_must_be_an_integer) {
  responses_params p = ok({{"input", "x"}, {"temperature", 1.0}, {"seed", 7}});
  auto g = build_responses_generation(p, json::array(), ctx);
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  ASSERT_TRUE(std::get<openai_request>(g).gen.params.seed.has_value());
  EXPECT_EQ(*std::get<openai_request>(g).gen.params.seed, 7u);
  p = ok({{"input", "x"}});
  g = build_responses_generation(p, json::array(), ctx);
  ASSERT_FALSE(is_error(g));
  EXPECT_FALSE(std::get<openai_request>(g).gen.params.seed.has_value());
  EXPECT_EQ(bad({{"input", "x"}, {"seed", "7"}}).param, "seed");
  EXPECT_EQ(bad({{"input", "x"}, {"seed", 1.5}}).param, "seed");
}

TEST_F(responses_api_test, tools_and_text_format_map_onto_the_chat_fields) {
  responses_params p = ok({{"input", "x"},
                           {"tools", json::array({{{"type", "function"}, {"name", "f"},
                                                   {"parameters", {{"type", "object"}}}}})},
                           {"tool_choice", {{"type", "function"}, {"name", "f"}}},
                           {"parallel_tool_calls", false},
                           {"text", {{"format", {{"type", "json_schema"}, {"name", "s"}, {"schema", {{"type", "object"}}}}}}}});
  EXPECT_EQ(p.chat_fields["tools"][0]["function"]["name"], "f");
  EXPECT_EQ(p.chat_fields["tool_choice"]["function"]["name"], "f");
  EXPECT_EQ(p.chat_fields["response_format"]["json_schema"]["name"], "s");
  EXPECT_FALSE(p.parallel_tool_calls);
  const api_context roomy{&codec, 4000, 512, 4, "m"};  // the tools' system prompt is long
  // As OpenAI: tools with a text.format are served (a call, or content in the format under auto).
  auto g = build_responses_generation(p, json::array(), roomy);
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  p.chat_fields.erase("tool_choice");
  g = build_responses_generation(p, json::array(), roomy);
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  EXPECT_NE(std::get<openai_request>(g).gen.constraint.text.find("\"content\":{\"type\":\"object\"}"), std::string::npos)
      << std::get<openai_request>(g).gen.constraint.text;
  p.chat_fields.erase("response_format");
  g = build_responses_generation(p, json::array(), roomy);
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  const openai_request& r = std::get<openai_request>(g);
  EXPECT_TRUE(r.tool_calls);  // the answer is the tool envelope
  EXPECT_EQ(r.tool_names, std::vector<std::string>{"f"});
  EXPECT_EQ(bad({{"input", "x"}, {"parallel_tool_calls", "yes"}}).param, "parallel_tool_calls");
}

TEST_F(responses_api_test, text_format_alone_constrains_the_output_and_tool_choice_none_does_not_call) {
  responses_params p = ok({{"input", "x"}, {"text", {{"format", {{"type", "json_object"}}}}}});
  auto g = build_responses_generation(p, json::array(), ctx);
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  EXPECT_FALSE(std::get<openai_request>(g).tool_calls);
  EXPECT_EQ(p.chat_fields["response_format"]["type"], "json_object");
  p = ok({{"input", "x"}, {"tools", json::array({{{"type", "function"}, {"name", "f"}}})}, {"tool_choice", "none"}});
  g = build_responses_generation(p, json::array(), api_context{&codec, 4000, 512, 4, "m"});
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  EXPECT_FALSE(std::get<openai_request>(g).tool_calls);
}

TEST_F(responses_api_test, function_call_items_become_assistant_tool_calls_and_tool_messages) {
  responses_params p = ok({{"input", json::array({{{"type", "function_call"}, {"call_id", "c1"}, {"name", "f"}, {"arguments", "{\"a\":7}"}},
                                                  {{"type", "function_call_output"}, {"call_id", "c1"}, {"output", "forty-two"}}})}});
  json m = items_to_messages(p.input_items);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(m[0]["tool_calls"][0]["id"], "c1");
  EXPECT_EQ(m[1]["role"], "tool");
  EXPECT_EQ(m[1]["tool_call_id"], "c1");
  auto g = build_responses_generation(p, json::array(), ctx);
  ASSERT_FALSE(is_error(g)) << std::get<api_error>(g).message;
  const std::string prompt = prompt_text(std::get<openai_request>(g));
  EXPECT_NE(prompt.find("\"f\""), std::string::npos) << prompt;  // the call is shown to the model
  EXPECT_NE(prompt.find("forty-two"), std::string::npos) << prompt;  // and its result
}

generation_event text_event(const std::string& text, finish_reason f = finish_reason::none) {
  generation_event ev;
  ev.text = text;
  ev.token_ids = {static_cast<int32_t>(text.empty() ? 0 : text[0])};
  ev.finish = f;
  if (f != finish_reason::none) ev.usage = usage_info{10, 2, 8};
  return ev;
}

std::vector<std::string> types(const std::vector<json>& events) {
  std::vector<std::string> t;
  for (const auto& e : events) t.push_back(e["type"].get<std::string>());
  return t;
}

TEST(response_builder, emits_openai_event_order_with_consecutive_sequence_numbers) {
  responses_params p;
  response_builder b(p, "resp_1", "m");
  std::vector<json> all = b.start();
  for (auto& e : b.on_event(text_event("He"))) all.push_back(e);
  for (auto& e : b.on_event(text_event("y", finish_reason::stop))) all.push_back(e);
  EXPECT_EQ(types(all), (std::vector<std::string>{"response.created", "response.in_progress", "response.output_item.added",
                                                  "response.content_part.added", "response.output_text.delta",
                                                  "response.output_text.delta", "response.output_text.done",
                                                  "response.content_part.done", "response.output_item.done",
                                                  "response.completed"}));
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i]["sequence_number"], i);
  // The lifecycle events show the response before any output (the SDK's stream helper adds items itself).
  EXPECT_TRUE(all[0]["response"]["output"].empty());
  EXPECT_EQ(all[0]["response"]["status"], "in_progress");
  const json done = all.back()["response"];
  EXPECT_EQ(done["status"], "completed");
  EXPECT_EQ(done["output"][0]["content"][0]["text"], "Hey");
  EXPECT_EQ(done["usage"]["input_tokens"], 10);
  EXPECT_EQ(done["usage"]["input_tokens_details"]["cached_tokens"], 8);
  EXPECT_EQ(done["usage"]["output_tokens"], 2);
  EXPECT_EQ(all[6]["text"], "Hey");
  EXPECT_TRUE(b.done());
}

TEST(response_builder, length_is_incomplete_with_max_output_tokens_and_error_fails) {
  responses_params p;
  response_builder b(p, "resp_1", "m");
  b.start();
  auto ev = b.on_event(text_event("x", finish_reason::length));
  EXPECT_EQ(ev.back()["type"], "response.incomplete");
  EXPECT_EQ(ev.back()["response"]["incomplete_details"]["reason"], "max_output_tokens");
  response_builder f(p, "resp_2", "m");
  f.start();
  f.on_event(text_event("x"));
  auto failed = f.fail(api_error{500, "boom", "server_error", {}, {}});
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["type"], "response.failed");
  EXPECT_EQ(failed[0]["response"]["error"]["message"], "boom");
  EXPECT_TRUE(f.fail(api_error{}).empty());  // a response ends once
}

TEST(response_builder, a_tool_envelope_becomes_function_call_items_with_their_events) {
  responses_params p;
  response_builder b(p, "resp_1", "m");
  b.expect_tool_envelope({"get_weather"});
  std::vector<json> all = b.start();
  for (auto& e : b.on_event(text_event("{\"tool_calls\": [{\"name\": \"get_weather\", "))) all.push_back(e);
  ASSERT_EQ(all.size(), 3u);  // the call opens once its name is written
  EXPECT_EQ(all[2]["type"], "response.output_item.added");
  for (auto& e : b.on_event(text_event("\"arguments\": {\"city\": \"Oslo\"}}]}", finish_reason::stop))) all.push_back(e);
  EXPECT_EQ(types(all), (std::vector<std::string>{"response.created", "response.in_progress", "response.output_item.added",
                                                  "response.function_call_arguments.delta",
                                                  "response.function_call_arguments.done", "response.output_item.done",
                                                  "response.completed"}));
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i]["sequence_number"], i);
  const json item = all.back()["response"]["output"][0];
  EXPECT_EQ(item["type"], "function_call");
  EXPECT_EQ(item["name"], "get_weather");
  EXPECT_EQ(item["arguments"], "{\"city\":\"Oslo\"}");
  EXPECT_EQ(item["status"], "completed");
  EXPECT_TRUE(item["id"].get<std::string>().starts_with("fc_"));
  EXPECT_TRUE(item["call_id"].get<std::string>().starts_with("call_"));
  EXPECT_EQ(all[2]["item"]["arguments"], "");
  EXPECT_EQ(all[2]["item"]["status"], "in_progress");
  EXPECT_EQ(all[3]["item_id"], item["id"]);
  EXPECT_EQ(all[3]["delta"], item["arguments"]);
  EXPECT_EQ(all[4]["arguments"], item["arguments"]);
  EXPECT_EQ(all[5]["item"], item);
  // The next turn sees the call as an assistant tool call whose id is the call_id.
  const json m = b.assistant_message();
  EXPECT_EQ(m["tool_calls"][0]["id"], item["call_id"]);
  EXPECT_EQ(m["tool_calls"][0]["function"]["arguments"], item["arguments"]);
}

TEST(response_builder, a_content_envelope_or_a_truncated_one_is_a_message) {
  responses_params p;
  response_builder b(p, "resp_1", "m");
  b.expect_tool_envelope({"f"});
  b.start();
  auto ev = b.on_event(text_event("{\"content\": \"no call\"}", finish_reason::stop));
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back()["response"]["output"][0]["type"], "message");
  EXPECT_EQ(ev.back()["response"]["output"][0]["content"][0]["text"], "no call");
  EXPECT_EQ(b.assistant_message(), (json{{"role", "assistant"}, {"content", "no call"}}));
  response_builder t(p, "resp_2", "m");
  t.expect_tool_envelope({"f"});
  t.start();
  const std::string cut = "{\"tool_calls\": [{\"name\": \"f\", \"arguments\": {}}]}";
  ev = t.on_event(text_event(cut, finish_reason::length));
  EXPECT_EQ(ev.back()["type"], "response.incomplete");
  // Calls count only when the answer ended: the call that was sent closes incomplete, and the next
  // turn sees the text as written.
  EXPECT_EQ(ev.back()["response"]["output"][0]["type"], "function_call");
  EXPECT_EQ(ev.back()["response"]["output"][0]["status"], "incomplete");
  EXPECT_EQ(t.assistant_message(), (json{{"role", "assistant"}, {"content", cut}}));
}

stored_response entry(const std::string& id, const std::string& owner) {
  stored_response r;
  r.id = id;
  r.owner = owner;
  r.response = {{"id", id}};
  return r;
}

TEST(response_store, keeps_at_most_size_entries_and_evicts_the_oldest) {
  response_store s(2, 3600);
  std::vector<std::string> evicted;
  s.on_evict([&](const stored_response& r) { evicted.push_back(r.id); });
  s.put(entry("a", "k"));
  s.put(entry("b", "k"));
  s.put(entry("c", "k"));
  EXPECT_EQ(evicted, std::vector<std::string>{"a"});
  EXPECT_EQ(s.get("a", "k"), nullptr);
  EXPECT_NE(s.get("c", "k"), nullptr);
  EXPECT_EQ(s.stats().num_entries, 2);
  EXPECT_EQ(s.stats().num_evicted, 1);
  EXPECT_GT(s.stats().num_bytes, 0);
}

TEST(response_store, entries_expire_by_age) {
  auto now = response_store::clock::time_point{};
  response_store s(10, 60, [&] { return now; });
  std::vector<std::string> evicted;
  s.on_evict([&](const stored_response& r) { evicted.push_back(r.id); });
  s.put(entry("a", "k"));
  now += std::chrono::seconds(30);
  s.put(entry("b", "k"));
  now += std::chrono::seconds(31);
  EXPECT_EQ(s.get("a", "k"), nullptr);
  EXPECT_NE(s.get("b", "k"), nullptr);
  EXPECT_EQ(evicted, std::vector<std::string>{"a"});
  now += std::chrono::seconds(30);
  s.expire();
  EXPECT_EQ(s.stats().num_entries, 0);
  EXPECT_EQ(s.stats().num_bytes, 0);
}

TEST(response_store, another_key_sees_nothing_and_cannot_delete) {
  response_store s(10, 3600);
  s.put(entry("a", "key1"));
  EXPECT_EQ(s.get("a", "key2"), nullptr);
  EXPECT_FALSE(s.erase("a", "key2"));
  EXPECT_NE(s.get("a", "key1"), nullptr);
  EXPECT_TRUE(s.erase("a", "key1"));
  EXPECT_EQ(s.get("a", "key1"), nullptr);
}

TEST(response_store, size_zero_keeps_nothing) {
  response_store s(0, 3600);
  int evicted = 0;
  s.on_evict([&](const stored_response&) { ++evicted; });
  s.put(entry("a", "k"));
  EXPECT_EQ(s.get("a", "k"), nullptr);
  EXPECT_EQ(evicted, 1);
}

TEST(responses_service, unknown_previous_response_is_a_404_and_a_chain_continues_the_conversation) {
  test::fake_codec codec;
  api_context ctx{&codec, 200, 512, 4, "m"};
  response_store s(10, 3600);
  auto missing = prepare_response({{"input", "x"}, {"previous_response_id", "resp_nope"}}, false, s, "k", ctx);
  ASSERT_TRUE(is_error(missing));
  EXPECT_EQ(std::get<api_error>(missing).status, 404);
  EXPECT_EQ(std::get<api_error>(missing).param, "previous_response_id");

  auto first = prepare_response({{"input", "q1"}, {"instructions", "sys"}}, false, s, "k", ctx);
  ASSERT_FALSE(is_error(first));
  auto& run = *std::get<std::unique_ptr<response_run>>(first);
  run.builder.start();
  run.builder.on_event(text_event("a1", finish_reason::stop));
  s.put(run.entry());
  // Instructions of the previous response are not carried (as OpenAI documents).
  auto second = prepare_response({{"input", "q2"}, {"previous_response_id", run.builder.id()}}, false, s, "k", ctx);
  ASSERT_FALSE(is_error(second));
  const auto& g = std::get<std::unique_ptr<response_run>>(second)->gen;
  EXPECT_EQ(codec.decode(g.gen.prompt_ids, false).value(), "<|user|>q1\n<|assistant|>a1\n<|user|>q2\n<|assistant|>");
  // Another key cannot continue it.
  auto other = prepare_response({{"input", "q2"}, {"previous_response_id", run.builder.id()}}, false, s, "k2", ctx);
  ASSERT_TRUE(is_error(other));
  EXPECT_EQ(std::get<api_error>(other).status, 404);
}

TEST(responses_service, routes_get_delete_and_list_input_items) {
  response_store s(10, 3600);
  stored_response r = entry("resp_a", "k");
  r.input_items = json::array({{{"id", "m1"}}, {{"id", "m2"}}, {{"id", "m3"}}});
  s.put(r);
  http_request get{"GET", "/v1/responses/resp_a", "", "", "Bearer k"};
  EXPECT_EQ(stored_response_route(s, get, "k").status, 200);
  EXPECT_EQ(stored_response_route(s, get, "other").status, 404);
  http_request items{"GET", "/v1/responses/resp_a/input_items", "order=asc&limit=2", "", ""};
  json body = json::parse(stored_response_route(s, items, "k").body);
  EXPECT_EQ(body["data"].size(), 2u);
  EXPECT_EQ(body["first_id"], "m1");
  EXPECT_TRUE(body["has_more"].get<bool>());
  items.query = "";
  EXPECT_EQ(json::parse(stored_response_route(s, items, "k").body)["first_id"], "m3");  // default: desc
  items.query = "limit=0";
  EXPECT_EQ(stored_response_route(s, items, "k").status, 400);
  http_request del{"DELETE", "/v1/responses/resp_a", "", "", ""};
  EXPECT_EQ(stored_response_route(s, del, "other").status, 404);
  EXPECT_EQ(stored_response_route(s, del, "k").status, 200);
  EXPECT_EQ(stored_response_route(s, get, "k").status, 404);
}

TEST(responses_service, bearer_token_takes_the_key_of_the_header) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer   abc "), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token(""), "");
}

}  // namespace
}  // namespace troupe
