// Tools through the model's own chat template: which native format a template speaks, the parser of
// each family's output (Hermes/Qwen <tool_call>, Llama 3.x JSON, Mistral [TOOL_CALLS]), and a chat
// request with tools and a tool-call history rendered by the real templates byte for byte like
// Python jinja2 (tests/data/chat_templates/expected.json, conversation "tools").
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "net/native_tool_format.h"
#include "net/openai_api.h"
#include "net/openai_response.h"
#include "net/pythonic_calls.h"
#include "net/responses_service.h"
#include "net/tool_request.h"
#include "runtime/chat_template.h"
#include "runtime/grammar_test_support.h"
#include "support/constraint_doubles.h"

namespace troupe {
namespace {

using json = nlohmann::json;

const std::string k_dir = std::string(TROUPE_TEST_DATA_DIR) + "/chat_templates/";
const std::vector<std::string> known{"get_weather", "get_time"};

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(native_tools, format_detected_from_the_template) {
  EXPECT_EQ(detect_tool_format(read_text(k_dir + "smollm2.jinja")), tool_format::generic);
  EXPECT_EQ(detect_tool_format(read_text(k_dir + "qwen2_5.jinja")), tool_format::hermes);
  EXPECT_EQ(detect_tool_format(read_text(k_dir + "qwen3.jinja")), tool_format::hermes);
  EXPECT_EQ(detect_tool_format(read_text(k_dir + "llama3_1.jinja")), tool_format::llama3);
  EXPECT_EQ(detect_tool_format(read_text(k_dir + "llama3_2.jinja")), tool_format::llama3);
  EXPECT_EQ(detect_tool_format(read_text(k_dir + "mistral_v0_3.jinja")), tool_format::mistral);
  EXPECT_EQ(detect_tool_format("{{ '<tool_call>' }}"), tool_format::generic) << "no tools variable: generic";
  // Llama 3.2's pythonic templates describe their output format in these words.
  EXPECT_EQ(detect_tool_format("{%- if tools is not none %}Respond in the format [func_name1(params_name1=params_value1, "
                               "params_name2=params_value2...), func_name2(params)]{% endif %}<|python_tag|>"),
            tool_format::pythonic);
}

void expect_calls(const tool_output& out, const std::vector<std::pair<std::string, std::string>>& want) {
  ASSERT_TRUE(out.is_calls) << out.content;
  ASSERT_EQ(out.calls.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(out.calls[i].name, want[i].first);
    EXPECT_EQ(out.calls[i].arguments, want[i].second);
  }
}

TEST(native_tools, hermes_calls) {
  const auto p = [](std::string_view t) { return parse_native_tool_output(tool_format::hermes, t, known); };
  expect_calls(p("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"),
               {{"get_weather", R"({"city":"Paris"})"}});
  expect_calls(p("<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}</tool_call>\n"
                 "<tool_call>{\"name\":\"get_time\",\"arguments\":\"{\\\"tz\\\": \\\"UTC\\\"}\"}</tool_call>"),
               {{"get_weather", R"({"city":"Oslo"})"}, {"get_time", R"({"tz":"UTC"})"}});
  auto with_prose = p("Let me check.\n<tool_call>{\"name\":\"get_time\"}</tool_call>");
  expect_calls(with_prose, {{"get_time", "{}"}});
  EXPECT_EQ(with_prose.content, "Let me check.");
  // The stop string </tool_call> may be cut off: an open last block is read to the end.
  expect_calls(p("<tool_call>{\"name\":\"get_time\",\"arguments\":{}}"), {{"get_time", "{}"}});
  for (const char* text : {"It is sunny.", "<tool_call>{\"name\":\"nope\",\"arguments\":{}}</tool_call>",
                           "<tool_call>{\"name\":\"get_time\",\"arguments\":{</tool_call>",
                           "<tool_call>{\"name\":\"get_time\"}</tool_call> and then prose",
                           "<tool_call>{\"name\":\"get_time\",\"arguments\":[1]}</tool_call>", "<tool_call>"}) {
    SCOPED_TRACE(text);
    auto out = p(text);
    EXPECT_FALSE(out.is_calls);
    EXPECT_EQ(out.content, text) << "unparsable output is returned as text";
  }
}

TEST(native_tools, llama3_calls) {
  const auto p = [](std::string_view t) { return parse_native_tool_output(tool_format::llama3, t, known); };
  expect_calls(p("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}"),
               {{"get_weather", R"({"city":"Paris"})"}});
  expect_calls(p("<|python_tag|>{\"name\": \"get_time\", \"parameters\": {}}"), {{"get_time", "{}"}});
  expect_calls(p("{\"name\":\"get_time\",\"parameters\":{\"tz\":\"a;b\"}}; {\"name\":\"get_weather\",\"arguments\":{\"city\":\"X\"}}"),
               {{"get_time", R"({"tz":"a;b"})"}, {"get_weather", R"({"city":"X"})"}});
  for (const char* text : {"Sunny.", "{\"name\": \"get_time\", \"parameters\": {", "{\"city\": \"Paris\"}",
                           "{\"name\":\"get_time\"} trailing"}) {
    SCOPED_TRACE(text);
    auto out = p(text);
    EXPECT_FALSE(out.is_calls);
    EXPECT_EQ(out.content, text);
  }
}

TEST(native_tools, mistral_calls) {
  const auto p = [](std::string_view t) { return parse_native_tool_output(tool_format::mistral, t, known); };
  expect_calls(p("[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, "
                 "{\"name\": \"get_time\", \"arguments\": {}, \"id\": \"abc123XYZ\"}]"),
               {{"get_weather", R"({"city":"Paris"})"}, {"get_time", "{}"}});
  for (const char* text : {"Sunny.", "[TOOL_CALLS] []", "[TOOL_CALLS] [{\"name\": \"get_time\"",
                           "[TOOL_CALLS] {\"name\": \"get_time\"}", "[TOOL_CALLS] [{\"name\": \"rm\"}]"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(p(text).is_calls);
    EXPECT_EQ(p(text).content, text);
  }
}

TEST(native_tools, llama_3_2_pythonic_calls) {
  const auto p = [&](const std::string& text) { return parse_native_tool_output(tool_format::pythonic, text, known); };
  expect_calls(p("[get_weather(city=\"Paris\", days=3, unit='c')]"), {{"get_weather", R"({"city":"Paris","days":3,"unit":"c"})"}});
  expect_calls(p(" <|python_tag|>[get_time(), get_weather(city=\"K\\u00f6ln \\\"old\\\"\\n\")]\n"),
               {{"get_time", "{}"}, {"get_weather", R"({"city":"Köln \"old\"\n"})"}});
  expect_calls(p("[get_weather(opts={'deep': [1, 2.5, -3e2, True, None]}, pair=(1, 'a'), flag=False,)]"),
               {{"get_weather", R"({"opts":{"deep":[1,2.5,-300.0,true,null]},"pair":[1,"a"],"flag":false})"}});
  for (const char* text : {"Sunny.", "[]", "[get_weather(city=\"Paris\")", "[rm_rf()]", "[get_weather(city=Paris)]",
                           "[get_weather(\"Paris\")]", "[get_weather(a=1, a=2)]", "[get_weather(a=1)] and more",
                           "[get_weather(a={1: 2})]", "[get_weather(a='unterminated)]", "get_weather(a=1)"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(p(text).is_calls);
    EXPECT_EQ(p(text).content, text);
  }
  const std::string deep = "[get_weather(a=" + std::string(5000, '[') + ")]";
  EXPECT_FALSE(p(deep).is_calls) << "nesting is bounded";
}

TEST(native_tools, pythonic_grammar_forces_calls_with_their_required_arguments) {
  using grammar_test::compile_or_die;
  using grammar_test::matches;
  using grammar_test::tiny_vocab;
  const json weather = {{"type", "function"},
                        {"function", {{"name", "get_weather"},
                                      {"parameters", {{"type", "object"},
                                                      {"properties", {{"city", {{"type", "string"}}},
                                                                      {"days", {{"type", "integer"}}},
                                                                      {"unit", {{"enum", {"c", "f"}}}},
                                                                      {"opts", {{"type", "object"}}}}},
                                                      {"required", {"city", "unit", "opts"}}}}}}};
  const json time = {{"type", "function"}, {"function", {{"name", "get_time"}}}};
  tool_request t;
  ASSERT_FALSE(read_tools({{"tools", {weather, time}}, {"tool_choice", "required"}}, t));
  auto g = compile_or_die(constraint_spec::kind::grammar, pythonic_call_grammar(t), tiny_vocab());
  // The schema's order (here sorted: the body was parsed into a sorted object).
  const std::string call = "get_weather(city=\"Paris \\\"x\\\"\", opts={\"a\": [1, -2.5, True, None]}, unit=\"c\")";
  for (const std::string& ok : std::vector<std::string>{"[" + call + "]", "[get_time()]", "[get_time(), " + call + "]"}) {
    EXPECT_TRUE(matches(*g, ok)) << ok;
    EXPECT_TRUE(parse_pythonic_calls(ok, known).is_calls) << "what the grammar allows parses: " << ok;
  }
  for (const char* bad : {"[]", "[get_weather(city=\"Paris\")]", "[get_weather(unit=\"c\", city=\"P\", opts={})]",
                          "[get_weather(city=\"P\", opts={}, unit=\"k\")]", "[rm()]", "get_time()", "[get_time()] "}) {
    EXPECT_FALSE(matches(*g, bad)) << bad;
  }
  tool_request named;
  ASSERT_FALSE(read_tools({{"tools", {weather, time}}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}},
                          named));
  auto one = compile_or_die(constraint_spec::kind::grammar, pythonic_call_grammar(named), tiny_vocab());
  EXPECT_TRUE(matches(*one, "[get_time()]"));
  EXPECT_FALSE(matches(*one, "[get_time(), get_time()]")) << "a named tool is one call";
  EXPECT_FALSE(matches(*one, "[" + call + "]"));
}

// Streaming hands the parser the whole choice when it ends: any split of the text into chunks
// parses the same once joined, and a prefix (the choice cut by max_tokens) never yields calls
// that were not written whole.
TEST(native_tools, chunk_splits_parse_the_same_when_joined) {
  const std::pair<tool_format, std::string> cases[] = {
      {tool_format::hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"},
      {tool_format::llama3, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}"},
      {tool_format::mistral, "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]"},
  };
  for (const auto& [f, text] : cases) {
    for (size_t cut = 0; cut <= text.size(); ++cut) {
      const std::string joined = text.substr(0, cut) + text.substr(cut);
      expect_calls(parse_native_tool_output(f, joined, known), {{"get_weather", R"({"city":"Paris"})"}});
      auto prefix = parse_native_tool_output(f, text.substr(0, cut), known);
      if (prefix.is_calls) EXPECT_EQ(prefix.calls[0].arguments, R"({"city":"Paris"})") << cut;
    }
  }
}

TEST(native_tools, mistral_ids_are_nine_alphanumerics_and_stable) {
  EXPECT_EQ(native_call_id("abc123XYZ", tool_format::mistral), "abc123XYZ");
  const std::string id = native_call_id("call_0123456789abcdefghijklmn", tool_format::mistral);
  EXPECT_EQ(id.size(), 9u);
  for (char c : id) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << id;
  EXPECT_EQ(id, native_call_id("call_0123456789abcdefghijklmn", tool_format::mistral));
  EXPECT_NE(id, native_call_id("call_0123456789abcdefghijklmo", tool_format::mistral));
  EXPECT_EQ(native_call_id("call_x", tool_format::hermes), "call_x");
}

// A codec over a real chat template; text encodes to its bytes.
class template_codec final : public text_codec {
 public:
  template_codec(const std::string& name, std::time_t fixed_time, const json& special) {
    chat_template_options o;
    o.fixed_time = fixed_time;
    o.bos_token = special.value("bos_token", "");
    o.eos_token = special.value("eos_token", "");
    auto t = chat_template::parse(read_text(k_dir + name + ".jinja"), o);
    EXPECT_TRUE(t.ok());
    if (t.ok()) tmpl_ = std::move(*t);
  }
  bool has_tokenizer() const override { return true; }
  bool has_chat_template() const override { return true; }
  int64_t vocab_size() const override { return 512; }
  result<std::vector<int32_t>> encode(const std::string& text, bool, bool) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  result<std::string> decode(const std::vector<int32_t>& ids, bool) const override {
    std::string s;
    for (int32_t id : ids) s += static_cast<char>(id);
    return s;
  }
  result<std::string> render_chat(const json& messages, bool add_generation_prompt, const json& extra) const override {
    return tmpl_->render(messages, add_generation_prompt, extra);
  }
  std::string chat_template_source() const override { return tmpl_ ? tmpl_->source() : ""; }
  // A stand-in for the grammar engine (the spec is what the tests check).
  result<std::shared_ptr<const compiled_constraint>> compile(const constraint_spec&) const override {
    return std::shared_ptr<const compiled_constraint>(
        std::make_shared<testing::compiled_choices>(std::vector<std::vector<int32_t>>{}, -1, true));
  }

 private:
  std::optional<chat_template> tmpl_;
};

TEST(native_tools, request_renders_tools_and_history_through_the_template_like_jinja2) {
  const json expected = json::parse(read_text(k_dir + "expected.json"));
  int checked = 0;
  for (const auto& c : expected["cases"]) {
    const bool tool_case = c["conversation"] == "tools" || c["conversation"] == "tools_parallel";
    if (!tool_case || c["template"] == "smollm2") continue;
    const std::string name = c["template"];
    SCOPED_TRACE(name + (c["add_generation_prompt"].get<bool>() ? " / gen" : ""));
    template_codec codec(name, expected["fixed_time"].get<std::time_t>(), c["extra"]);
    api_context ctx{&codec, 1 << 20, 512, 4, "m"};
    // The client's shape: arguments as JSON text, which the template gets as an object.
    json messages = c["messages"];
    for (auto& m : messages) {
      if (!m.contains("tool_calls")) continue;
      for (auto& call : m["tool_calls"]) call["function"]["arguments"] = call["function"]["arguments"].dump();
    }
    const json body = {{"messages", messages},
                       {"tools", c["extra"]["tools"]},
                       {"add_generation_prompt", c["add_generation_prompt"]},
                       {"max_tokens", 8}};
    auto r = parse_openai_request(api_kind::chat, body, ctx);
    ++checked;
    if (c.contains("error")) {  // the template refuses the history (Llama 3: one call at a time): a 400
      ASSERT_TRUE(is_error(r));
      EXPECT_EQ(std::get<api_error>(r).status, 400);
      EXPECT_NE(std::get<api_error>(r).message.find(c["error"].get<std::string>()), std::string::npos);
      continue;
    }
    ASSERT_FALSE(is_error(r)) << std::get<api_error>(r).message;
    const openai_request& req = std::get<openai_request>(r);
    EXPECT_EQ(codec.decode(req.gen.prompt_ids, false).value(), c["output"].get<std::string>());
    EXPECT_TRUE(req.tool_calls);
    EXPECT_EQ(req.tool_syntax, detect_tool_format(codec.chat_template_source()));
    EXPECT_TRUE(req.gen.constraint.empty()) << "auto with a native template free-runs";
  }
  EXPECT_EQ(checked, 20);  // 5 templates x 2 conversations x add_generation_prompt
}

TEST(native_tools, required_constrains_to_the_native_format_and_auto_parses_it) {
  template_codec codec("qwen2_5", 0, json{{"eos_token", "<|im_end|>"}});
  api_context ctx{&codec, 1 << 20, 512, 4, "m"};
  const json tools = json::array({{{"type", "function"},
                                   {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}});
  const json msgs = json::array({{{"role", "user"}, {"content", "Weather?"}}});
  auto req = parse_openai_request(api_kind::chat, {{"messages", msgs}, {"tools", tools}, {"tool_choice", "required"}}, ctx);
  ASSERT_FALSE(is_error(req)) << std::get<api_error>(req).message;
  const openai_request& rq = std::get<openai_request>(req);
  EXPECT_EQ(rq.tool_syntax, tool_format::hermes);
  EXPECT_EQ(rq.gen.constraint.type, constraint_spec::kind::json_schema);
  const json tag = json::parse(rq.gen.constraint.text)["x-troupe-tagged"];
  EXPECT_EQ(tag["prefix"], "<tool_call>\n");
  EXPECT_EQ(tag["suffix"], "\n</tool_call>");
  EXPECT_EQ(tag["schema"]["properties"]["name"]["const"], "get_weather");
  EXPECT_NE(codec.decode(rq.gen.prompt_ids, false).value().find("<tools>"), std::string::npos)
      << "the template's own tool section, not the generic prompt";

  auto autoreq = parse_openai_request(api_kind::chat, {{"messages", msgs}, {"tools", tools}}, ctx);
  ASSERT_FALSE(is_error(autoreq)) << std::get<api_error>(autoreq).message;
  const response_meta meta = make_response_meta(std::get<openai_request>(autoreq), "chatcmpl-1");
  auto [message, reason] =
      tool_message(meta, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>",
                   finish_reason::stop);
  EXPECT_EQ(reason, "tool_calls");
  ASSERT_EQ(message["tool_calls"].size(), 1u);
  EXPECT_EQ(message["tool_calls"][0]["function"]["arguments"], R"({"city":"Rome"})");
  auto [lead_message, lead_reason] = tool_message(meta, "Checking.\n<tool_call>{\"name\": \"get_weather\"}</tool_call>",
                                                  finish_reason::stop);
  EXPECT_EQ(lead_message["content"], "Checking.");
  // Streamed: the same content, then the call.
  tool_stream ts(meta.tool_syntax, meta.tool_names);
  const auto chunks = tool_stream_chunks(meta, 0, ts, "Checking.\n<tool_call>{\"name\": \"get_weather\"}</tool_call>",
                                         finish_reason::stop, false);
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_EQ(json::parse(chunks[0])["choices"][0]["delta"]["content"], "Checking.");
  EXPECT_EQ(json::parse(chunks[1])["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(chunks.back())["choices"][0]["finish_reason"], "tool_calls");
  auto [text_message, text_reason] = tool_message(meta, "It is sunny.", finish_reason::stop);
  EXPECT_EQ(text_message["content"], "It is sunny.");
  EXPECT_EQ(text_reason, "stop");
}

TEST(native_tools, responses_read_calls_in_the_templates_format) {
  template_codec codec("qwen2_5", 0, json{{"eos_token", "<|im_end|>"}});
  api_context ctx{&codec, 1 << 20, 512, 4, "m"};
  response_store store(8, 60);
  const json body = {{"model", "m"}, {"input", "Weather?"},
                     {"tools", json::array({{{"type", "function"}, {"name", "get_weather"}, {"parameters", {{"type", "object"}}}}})}};
  auto run = prepare_response(body, false, store, "", ctx);
  ASSERT_FALSE(is_error(run)) << std::get<api_error>(run).message;
  response_builder& b = std::get<std::unique_ptr<response_run>>(run)->builder;
  b.start();
  generation_event ev;
  ev.text = "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>";
  ev.token_ids = {1};
  ev.finish = finish_reason::stop;
  b.on_event(ev);
  const json output = b.object()["output"];
  ASSERT_EQ(output.size(), 2u) << output.dump();
  EXPECT_EQ(output[0]["content"][0]["text"], "Checking.");
  EXPECT_EQ(output[1]["type"], "function_call");
  EXPECT_EQ(output[1]["arguments"], R"({"city":"Rome"})");
}

TEST(native_tools, constraint_schema_per_family) {
  tool_request t;
  ASSERT_FALSE(read_tools({{"tools", json::array({{{"type", "function"}, {"function", {{"name", "get_time"}}}},
                                                  {{"type", "function"}, {"function", {{"name", "get_weather"}}}}})},
                           {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}},
                          t));
  const json llama = json::parse(native_constraint_schema(t, tool_format::llama3))["x-troupe-tagged"];
  EXPECT_EQ(llama["schema"]["required"], json::array({"name", "parameters"})) << "Llama 3 writes parameters";
  EXPECT_EQ(llama["schema"]["properties"]["name"]["const"], "get_weather") << "the named tool only";
  EXPECT_EQ(llama["max"], 1);
  const json mistral = json::parse(native_constraint_schema(t, tool_format::mistral))["x-troupe-tagged"];
  EXPECT_EQ(mistral["prefix"], "[TOOL_CALLS] ");
  EXPECT_EQ(mistral["schema"]["type"], "array");
  EXPECT_EQ(mistral["schema"]["maxItems"], 1);
  t.choice = tool_choice_mode::required;
  const json hermes = json::parse(native_constraint_schema(t, tool_format::hermes))["x-troupe-tagged"];
  EXPECT_EQ(hermes["schema"]["anyOf"].size(), 2u);
  EXPECT_GT(hermes["max"].get<int>(), 1) << "parallel calls allowed";
}

}  // namespace
}  // namespace troupe
