// Tool calling in the generic format: reading tools/tool_choice, the envelope schema built from the
// tools' parameter schemas, the system prompt, the history's tool_calls, the output parser (calls,
// content, anything else as text) and the response shapes (message.tool_calls, delta.tool_calls).
#include <gtest/gtest.h>

#include "fake_engine.h"
#include "net/openai_api.h"
#include "net/openai_response.h"
#include "net/tool_call_parser.h"
#include "net/tool_request.h"

namespace troupe {
namespace {

using json = nlohmann::json;

const json weather = {{"type", "function"},
                      {"function",
                       {{"name", "get_weather"},
                        {"description", "Weather of a city"},
                        {"parameters",
                         {{"type", "object"},
                          {"properties", {{"city", {{"type", "string"}}}}},
                          {"required", {"city"}}}}}}};
const json clock_tool = {{"type", "function"}, {"function", {{"name", "get_time"}}}};

tool_request read_ok(const json& body) {
  tool_request t;
  auto e = read_tools(body, t);
  EXPECT_FALSE(e) << (e ? e->message : "");
  return t;
}

TEST(tool_request, tool_choice_defaults_and_modes) {
  EXPECT_EQ(read_ok(json::object()).choice, tool_choice_mode::none);
  EXPECT_FALSE(read_ok(json::object()).active());
  EXPECT_EQ(read_ok({{"tools", {weather}}}).choice, tool_choice_mode::automatic);
  EXPECT_EQ(read_ok({{"tools", {weather}}, {"tool_choice", "none"}}).choice, tool_choice_mode::none);
  EXPECT_FALSE(read_ok({{"tools", {weather}}, {"tool_choice", "none"}}).active());
  EXPECT_EQ(read_ok({{"tools", {weather}}, {"tool_choice", "required"}}).choice, tool_choice_mode::required);
  auto named = read_ok({{"tools", {weather, clock_tool}},
                        {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}});
  EXPECT_EQ(named.choice, tool_choice_mode::named);
  EXPECT_EQ(named.named, "get_time");
  EXPECT_FALSE(read_ok({{"tools", {weather}}, {"parallel_tool_calls", false}}).parallel);
  EXPECT_EQ(read_ok({{"tools", {clock_tool}}}).tools[0].parameters.dump(), R"({"type":"object"})");
}

TEST(tool_request, bad_tools_are_400s_naming_the_field) {
  struct bad_case {
    const char* name;
    json body;
    const char* param;
  };
  const bad_case cases[] = {
      {"unknown named tool", {{"tools", {weather}}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}}, "tool_choice"},
      {"tool_choice word", {{"tools", {weather}}, {"tool_choice", "sometimes"}}, "tool_choice"},
      {"required without tools", {{"tool_choice", "required"}}, "tool_choice"},
      {"tools not a list", {{"tools", weather}}, "tools"},
      {"not a function", {{"tools", {{{"type", "retrieval"}}}}}, "tools"},
      {"bad name", {{"tools", {{{"type", "function"}, {"function", {{"name", "a b"}}}}}}}, "tools"},
      {"duplicate", {{"tools", {weather, weather}}}, "tools"},
      {"parameters type", {{"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", "x"}}}}}}}, "tools"},
      {"parallel type", {{"tools", {weather}}, {"parallel_tool_calls", "yes"}}, "parallel_tool_calls"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    tool_request t;
    auto e = read_tools(c.body, t);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, 400);
    EXPECT_EQ(e->param, c.param);
  }
}

TEST(tool_request, envelope_schema_follows_the_choice) {
  auto t = read_ok({{"tools", {weather, clock_tool}}, {"tool_choice", "required"}});
  json s = json::parse(tool_envelope_schema(t).dump());
  EXPECT_LT(tool_envelope_schema(t).dump().find("\"name\""), tool_envelope_schema(t).dump().find("\"arguments\""))
      << "the name comes first, so the model picks the function before writing its arguments";
  EXPECT_EQ(s["required"], json({"tool_calls"}));
  EXPECT_EQ(s["additionalProperties"], false);
  const json& calls = s["properties"]["tool_calls"];
  EXPECT_EQ(calls["minItems"], 1);
  EXPECT_FALSE(calls.contains("maxItems")) << "parallel calls allowed by default";
  ASSERT_EQ(calls["items"]["anyOf"].size(), 2u);
  const json& first = calls["items"]["anyOf"][0];
  EXPECT_EQ(first["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(first["properties"]["arguments"], weather["function"]["parameters"]);
  EXPECT_EQ(first["required"], json({"name", "arguments"}));

  auto named = read_ok({{"tools", {weather, clock_tool}}, {"parallel_tool_calls", false},
                        {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}});
  json ns = json::parse(tool_envelope_schema(named).dump());
  EXPECT_EQ(ns["properties"]["tool_calls"]["items"]["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(ns["properties"]["tool_calls"]["maxItems"], 1);

  json as = json::parse(tool_envelope_schema(read_ok({{"tools", {weather}}})).dump());  // auto: calls or content
  ASSERT_EQ(as["anyOf"].size(), 2u);
  EXPECT_TRUE(as["anyOf"][0]["properties"].contains("tool_calls"));
  EXPECT_EQ(as["anyOf"][1]["properties"]["content"]["type"], "string");
}

TEST(tool_request, the_prompt_describes_each_tool_and_joins_a_system_message) {
  auto t = read_ok({{"tools", {weather}}, {"tool_choice", "required"}});
  const std::string p = tool_system_prompt(t);
  EXPECT_NE(p.find("get_weather: Weather of a city"), std::string::npos) << p;
  EXPECT_NE(p.find("\"city\""), std::string::npos);
  EXPECT_NE(p.find("must call"), std::string::npos);
  json with_system = json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "hi"}}});
  add_tool_prompt(t, with_system);
  ASSERT_EQ(with_system.size(), 2u);
  EXPECT_EQ(with_system[0]["content"].get<std::string>().rfind("Be brief.\n\n", 0), 0u);
  json without = json::array({{{"role", "user"}, {"content", "hi"}}});
  add_tool_prompt(t, without);
  ASSERT_EQ(without.size(), 2u);
  EXPECT_EQ(without[0]["role"], "system");
}

TEST(tool_call_parser, parses_calls_content_and_falls_back_to_text) {
  const std::vector<std::string> known{"get_weather", "get_time"};
  auto calls = parse_tool_output(R"( {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                                    {"name": "get_time", "arguments": "{\"tz\": \"UTC\"}"}]} )", known);
  ASSERT_TRUE(calls.is_calls);
  ASSERT_EQ(calls.calls.size(), 2u);
  EXPECT_EQ(calls.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(calls.calls[0].arguments), (json{{"city", "Paris"}}));
  EXPECT_EQ(json::parse(calls.calls[1].arguments), (json{{"tz", "UTC"}}));
  auto no_args = parse_tool_output(R"({"tool_calls": [{"name": "get_time"}]})", known);
  ASSERT_TRUE(no_args.is_calls);
  EXPECT_EQ(no_args.calls[0].arguments, "{}");

  auto content = parse_tool_output(R"({"content": "It is sunny."})", known);
  EXPECT_FALSE(content.is_calls);
  EXPECT_EQ(content.content, "It is sunny.");

  for (const char* text : {"Just prose.", R"({"tool_calls": [{"name": "rm_rf", "arguments": {}}]})",
                           R"({"tool_calls": [{"name": "get_time", "arguments": {"a": )", R"({"tool_calls": []})",
                           R"({"tool_calls": [{"name": "get_time", "arguments": [1]}]})", R"([1, 2])", ""}) {
    SCOPED_TRACE(text);
    auto out = parse_tool_output(text, known);
    EXPECT_FALSE(out.is_calls);
    EXPECT_EQ(out.content, text) << "unparsable output comes back as it was";
  }
  const std::string deep = R"({"tool_calls": [{"name": "get_time", "arguments": ")" + std::string(5000, '[') + "\"}]}";
  EXPECT_FALSE(parse_tool_output(deep, known).is_calls);
  const std::string deep_body = std::string(5000, '{');
  EXPECT_FALSE(parse_tool_output(deep_body, known).is_calls);
}

class tool_api_test : public ::testing::Test {
 protected:
  test::fake_codec codec;
  api_context ctx{&codec, 4096, 512, 4, "m"};
  json messages = json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}});

  openai_request parse(const json& body) {
    auto r = parse_openai_request(api_kind::chat, body, ctx);
    EXPECT_FALSE(is_error(r)) << (is_error(r) ? std::get<api_error>(r).message : "");
    return is_error(r) ? openai_request{} : std::get<openai_request>(r);
  }
  std::string prompt_text(const openai_request& r) { return codec.decode(r.gen.prompt_ids, false).value(); }
};

TEST_F(tool_api_test, tools_constrain_the_answer_to_the_envelope) {
  auto r = parse({{"messages", messages}, {"tools", {weather}}, {"tool_choice", "required"}});
  EXPECT_TRUE(r.tool_calls);
  EXPECT_EQ(r.tool_names, std::vector<std::string>{"get_weather"});
  EXPECT_EQ(r.gen.constraint.type, constraint_spec::kind::json_schema);
  EXPECT_EQ(r.gen.constraint.text, tool_envelope_schema(read_ok({{"tools", {weather}}, {"tool_choice", "required"}})).dump());
  EXPECT_NE(r.gen.compiled, nullptr);
  EXPECT_NE(prompt_text(r).find("get_weather"), std::string::npos) << "the tools are described to the model";

  auto none = parse({{"messages", messages}, {"tools", {weather}}, {"tool_choice", "none"}});
  EXPECT_FALSE(none.tool_calls);
  EXPECT_TRUE(none.gen.constraint.empty()) << "tool_choice none: free text";
  EXPECT_EQ(prompt_text(none).find("get_weather"), std::string::npos);
}

TEST_F(tool_api_test, history_tool_calls_and_results_reach_the_prompt) {
  json history = json::array(
      {{{"role", "user"}, {"content", "Weather in Paris?"}},
       {{"role", "assistant"}, {"content", nullptr},
        {"tool_calls", {{{"id", "call_1"}, {"type", "function"},
                         {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}}}}},
       {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "18C and sunny"}}});
  auto r = parse({{"messages", history}, {"tools", {weather}}});
  const std::string text = prompt_text(r);
  EXPECT_NE(text.find(R"({"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]})"), std::string::npos) << text;
  EXPECT_NE(text.find("<|tool|>18C and sunny"), std::string::npos) << text;
}

TEST_F(tool_api_test, schemas_keep_the_clients_property_order) {
  // Parsed bodies sort their keys; with the raw text the grammar gets the order the client wrote.
  const std::string raw = R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function",
      "function": {"name": "f", "parameters": {"type": "object", "properties": {"zeta": {}, "alpha": {}}}}}]})";
  auto r = parse_openai_request(api_kind::chat, json::parse(raw), ctx, raw);
  ASSERT_FALSE(is_error(r));
  const std::string& text = std::get<openai_request>(r).gen.constraint.text;
  EXPECT_LT(text.find("zeta"), text.find("alpha")) << text;
  const std::string raw2 = R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema":
      {"name": "n", "schema": {"type": "object", "properties": {"zeta": {}, "alpha": {}}}}}})";
  auto r2 = parse_openai_request(api_kind::completion, json::parse(raw2), ctx, raw2);
  ASSERT_FALSE(is_error(r2));
  EXPECT_EQ(std::get<openai_request>(r2).gen.constraint.text, R"({"type":"object","properties":{"zeta":{},"alpha":{}}})");
}

TEST_F(tool_api_test, tools_with_a_json_response_format_answer_calls_or_formatted_content) {
  const json format = {{"type", "json_schema"},
                       {"json_schema", {{"name", "answer"},
                                        {"schema", {{"type", "object"},
                                                    {"properties", {{"city", {{"$ref", "#/$defs/c"}}}}},
                                                    {"required", {"city"}},
                                                    {"$defs", {{"c", {{"type", "string"}}}}}}}}}};
  auto r = parse({{"messages", messages}, {"tools", {weather}}, {"response_format", format}});
  const json schema = json::parse(r.gen.constraint.text);
  ASSERT_EQ(schema["anyOf"].size(), 2u);
  EXPECT_EQ(schema["anyOf"][1]["properties"]["content"]["properties"]["city"]["$ref"], "#/$defs/c");
  EXPECT_EQ(schema["$defs"]["c"]["type"], "string") << "the format's $defs resolve at the envelope's root";
  EXPECT_TRUE(r.tool_calls);
  EXPECT_NE(prompt_text(r).find("following this schema"), std::string::npos) << "the model is told the format";

  // json_object: content is any object. Under required the format has nothing to add.
  auto o = parse({{"messages", messages}, {"tools", {weather}}, {"response_format", {{"type", "json_object"}}}});
  EXPECT_EQ(json::parse(o.gen.constraint.text)["anyOf"][1]["properties"]["content"],
            (json{{"type", "object"}}));
  auto req = parse({{"messages", messages}, {"tools", {weather}}, {"tool_choice", "required"}, {"response_format", format}});
  EXPECT_FALSE(json::parse(req.gen.constraint.text).contains("anyOf"));

  // A formatted answer is the message content, as the model wrote it (whitespace dropped).
  const response_meta meta = make_response_meta(r, "chatcmpl-1");
  auto [message, reason] = tool_message(meta, R"({"content": {"city": "Paris"}})", finish_reason::stop);
  EXPECT_EQ(message["content"], R"({"city":"Paris"})");
  EXPECT_EQ(reason, "stop");

  // Only JSON formats combine with tools.
  auto rx = parse_openai_request(api_kind::chat,
                                 {{"messages", messages}, {"tools", {weather}}, {"structured_outputs", {{"regex", "a+"}}}}, ctx);
  ASSERT_TRUE(is_error(rx));
  EXPECT_EQ(std::get<api_error>(rx).status, 400);
  EXPECT_EQ(std::get<api_error>(rx).param, "structured_outputs.regex");
  auto c = parse_openai_request(api_kind::completion, {{"prompt", "x"}, {"tools", {weather}}}, ctx);
  ASSERT_TRUE(is_error(c));
  EXPECT_EQ(std::get<api_error>(c).param, "tools");
}

TEST(tool_response, final_body_carries_tool_calls_or_content) {
  response_meta meta;
  meta.kind = api_kind::chat;
  meta.tool_calls = true;
  meta.tool_names = {"get_weather"};
  generation_tracker tracker(2, 3, true);
  generation_event a;
  a.index = 0;
  a.text = R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]})";
  a.finish = finish_reason::stop;
  generation_event b;
  b.index = 1;
  b.text = R"({"content": "No tool needed."})";
  b.finish = finish_reason::stop;
  tracker.add(a);
  tracker.add(b);
  json body = final_response(meta, tracker, nullptr);
  const json& m0 = body["choices"][0]["message"];
  EXPECT_TRUE(m0["content"].is_null());
  ASSERT_EQ(m0["tool_calls"].size(), 1u);
  EXPECT_EQ(m0["tool_calls"][0]["type"], "function");
  EXPECT_EQ(m0["tool_calls"][0]["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(m0["tool_calls"][0]["id"].get<std::string>().size(), 29u);
  EXPECT_EQ(m0["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(m0["tool_calls"][0]["function"]["arguments"].get<std::string>()), (json{{"city", "Paris"}}));
  EXPECT_EQ(body["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(body["choices"][1]["message"]["content"], "No tool needed.");
  EXPECT_EQ(body["choices"][1]["finish_reason"], "stop");
}

TEST(tool_response, a_truncated_envelope_is_text_with_its_finish_reason) {
  response_meta meta;
  meta.kind = api_kind::chat;
  meta.tool_calls = true;
  meta.tool_names = {"get_weather"};
  auto [message, reason] = tool_message(meta, R"({"tool_calls": [{"name": "get_weather", "argu)", finish_reason::length);
  EXPECT_EQ(message["content"], R"({"tool_calls": [{"name": "get_weather", "argu)");
  EXPECT_EQ(reason, "length");
}

TEST(tool_response, stream_chunks_follow_openais_delta_shape) {
  response_meta meta;
  meta.kind = api_kind::chat;
  meta.id = "chatcmpl-x";
  meta.tool_calls = true;
  meta.tool_names = {"get_weather", "get_time"};
  tool_stream whole(meta.tool_syntax, meta.tool_names);
  auto chunks = tool_stream_chunks(
      meta, 0, whole, R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {}}]})",
      finish_reason::stop, false);
  ASSERT_EQ(chunks.size(), 5u);  // per call: id + name, then arguments; then the finish
  json c0 = json::parse(chunks[0]);
  EXPECT_EQ(c0["object"], "chat.completion.chunk");
  const json& d0 = c0["choices"][0]["delta"];
  EXPECT_EQ(d0["role"], "assistant");
  EXPECT_EQ(d0["tool_calls"][0]["index"], 0);
  EXPECT_EQ(d0["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(d0["tool_calls"][0]["function"]["arguments"], "");
  json c1 = json::parse(chunks[1]);
  EXPECT_EQ(json::parse(c1["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            (json{{"city", "Paris"}}));
  json c2 = json::parse(chunks[2]);
  EXPECT_EQ(c2["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
  EXPECT_FALSE(c2["choices"][0]["delta"].contains("role"));
  json last = json::parse(chunks[4]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_TRUE(last["choices"][0]["delta"].empty());

  tool_stream plain(meta.tool_syntax, meta.tool_names);
  auto text = tool_stream_chunks(meta, 1, plain, R"({"content": "hi"})", finish_reason::stop, true);
  ASSERT_EQ(text.size(), 2u);
  EXPECT_EQ(json::parse(text[0])["choices"][0]["delta"]["content"], "hi");
  EXPECT_EQ(json::parse(text[1])["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(json::parse(text[1]).contains("usage"));
}

}  // namespace
}  // namespace troupe
