// JSON -> generation_request mapping: every parameter lands in the right field, every bad type or
// range is a 400 naming the field, and the response builders produce OpenAI-shaped bodies.
#include "net/openai_api.h"

#include <gtest/gtest.h>

#include "fake_engine.h"
#include "net/json_guard.h"
#include "net/openai_response.h"

namespace troupe {
namespace {

using json = nlohmann::json;

class openai_api_test : public ::testing::Test {
 protected:
  test::fake_codec codec;
  api_context ctx{&codec, 64, 512, 4, "m"};

  openai_request ok(api_kind kind, const json& body) {
    auto r = parse_openai_request(kind, body, ctx);
    if (is_error(r)) ADD_FAILURE() << std::get<api_error>(r).message;
    return is_error(r) ? openai_request{} : std::get<openai_request>(r);
  }
  api_error bad(api_kind kind, const json& body) {
    auto r = parse_openai_request(kind, body, ctx);
    EXPECT_TRUE(is_error(r)) << body.dump();
    return is_error(r) ? std::get<api_error>(r) : api_error{};
  }
};

TEST_F(openai_api_test, maps_every_completion_parameter) {
  json body = {{"model", "x"}, {"prompt", "hi"}, {"max_tokens", 5}, {"temperature", 0.5}, {"top_p", 0.9},
               {"top_k", 40}, {"min_p", 0.05}, {"presence_penalty", 0.5}, {"frequency_penalty", -0.5},
               {"repetition_penalty", 1.1}, {"stop", {"x", "yz"}}, {"seed", 7}, {"logit_bias", {{"65", 2.5}}},
               {"logprobs", 3}, {"ignore_eos", true}, {"min_tokens", 2}, {"stop_token_ids", {5, 6}},
               {"n", 2}, {"stream", true}, {"stream_options", {{"include_usage", true}}}};
  openai_request r = ok(api_kind::completion, body);
  const sampling_params& p = r.gen.params;
  EXPECT_EQ(r.gen.prompt_ids, (std::vector<int32_t>{test::fake_codec::bos, 'h', 'i'}));
  EXPECT_EQ(p.max_tokens, 5);
  EXPECT_FLOAT_EQ(p.temperature, 0.5f);
  EXPECT_FLOAT_EQ(p.top_p, 0.9f);
  EXPECT_EQ(p.top_k, 40);
  EXPECT_FLOAT_EQ(p.min_p, 0.05f);
  EXPECT_FLOAT_EQ(p.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(p.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(p.repetition_penalty, 1.1f);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_EQ(p.seed, 7u);
  ASSERT_EQ(p.logit_bias.size(), 1u);
  EXPECT_EQ(p.logit_bias[0].first, 65);
  EXPECT_FLOAT_EQ(p.logit_bias[0].second, 2.5f);
  EXPECT_EQ(p.logprobs, 3);
  EXPECT_TRUE(p.ignore_eos);
  EXPECT_EQ(p.min_tokens, 2);
  EXPECT_EQ(p.stop_token_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(r.gen.n, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.model, "m");  // the served name, whatever the client sent
}

TEST_F(openai_api_test, defaults_max_tokens_to_what_is_left_of_session_len) {
  openai_request r = ok(api_kind::completion, {{"prompt", "abc"}});  // BOS + 3 tokens
  EXPECT_EQ(r.gen.params.max_tokens, 64 - 4);
  EXPECT_EQ(r.gen.params.logprobs, -1);
  EXPECT_FALSE(r.stream);
}

TEST_F(openai_api_test, accepts_token_id_prompts_and_single_string_lists) {
  EXPECT_EQ(ok(api_kind::completion, {{"prompt", {1, 2, 3}}}).gen.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ok(api_kind::completion, {{"prompt", {"a"}}}).gen.prompt_ids.size(), 2u);
  EXPECT_EQ(ok(api_kind::completion, {{"prompt", {{7, 8}}}}).gen.prompt_ids, (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(ok(api_kind::completion, {{"prompt", "x"}, {"stop", "s"}}).gen.params.stop,
            std::vector<std::string>{"s"});
}

TEST_F(openai_api_test, prompt_lists_become_one_prompt_each_with_its_echo_text) {
  openai_request r = ok(api_kind::completion, {{"prompt", {"ab", "c"}}, {"n", 2}});
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[0].ids, (std::vector<int32_t>{test::fake_codec::bos, 'a', 'b'}));
  EXPECT_EQ(r.prompts[1].ids, (std::vector<int32_t>{test::fake_codec::bos, 'c'}));
  EXPECT_EQ(r.prompts[1].text, "c");
  EXPECT_EQ(r.gen.prompt_ids, r.prompts[0].ids);
  openai_request ids = ok(api_kind::completion, {{"prompt", {{7, 8}, {9}}}});
  ASSERT_EQ(ids.prompts.size(), 2u);
  EXPECT_EQ(ids.prompts[1].ids, std::vector<int32_t>{9});
  EXPECT_FALSE(ids.prompts[0].text.empty());  // decoded for echo and text_offset
  json many = json::array();
  for (size_t i = 0; i < k_max_prompts; ++i) many.push_back("a");
  EXPECT_EQ(ok(api_kind::completion, {{"prompt", many}}).prompts.size(), k_max_prompts);
  many.push_back("a");
  EXPECT_EQ(bad(api_kind::completion, {{"prompt", many}}).param, "prompt");
}

TEST_F(openai_api_test, echo_scores_the_prompt_and_allows_max_tokens_zero) {
  openai_request r = ok(api_kind::completion, {{"prompt", "ab"}, {"echo", true}, {"logprobs", 2}, {"max_tokens", 0}});
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.gen.params.max_tokens, 0);
  EXPECT_EQ(r.gen.params.prompt_logprobs, 2);  // the echoed prompt's logprobs need its top 2
  EXPECT_EQ(r.prompt_logprobs, -1);            // vLLM's field was not asked for
  openai_request v = ok(api_kind::completion, {{"prompt", "ab"}, {"prompt_logprobs", 5}, {"max_tokens", 0}});
  EXPECT_FALSE(v.echo);
  EXPECT_EQ(v.gen.params.prompt_logprobs, 5);
  openai_request c = ok(api_kind::chat, {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"prompt_logprobs", 0}});
  EXPECT_EQ(c.gen.params.prompt_logprobs, 0);
  EXPECT_EQ(ok(api_kind::completion, {{"prompt", "a"}}).gen.params.lp_mode, logprobs_mode::raw);
  EXPECT_EQ(ok(api_kind::completion, {{"prompt", "a"}, {"logprobs_mode", "processed"}}).gen.params.lp_mode,
            logprobs_mode::processed);
  ctx.default_lp_mode = logprobs_mode::processed;
  EXPECT_EQ(ok(api_kind::completion, {{"prompt", "a"}}).gen.params.lp_mode, logprobs_mode::processed);
}

TEST_F(openai_api_test, chat_renders_the_template_and_maps_logprobs) {
  json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"logprobs", true}, {"top_logprobs", 2},
               {"max_completion_tokens", 3}};
  openai_request r = ok(api_kind::chat, body);
  std::string text = codec.decode(r.gen.prompt_ids, false).value();
  EXPECT_EQ(text, "<|user|>hi\n<|assistant|>");  // no BOS added: the template owns special tokens
  EXPECT_EQ(r.gen.params.logprobs, 2);
  EXPECT_EQ(r.gen.params.max_tokens, 3);
  EXPECT_TRUE(r.chat_logprobs);
  json parts = {{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}}}}};
  EXPECT_EQ(codec.decode(ok(api_kind::chat, parts).gen.prompt_ids, false).value(), "<|user|>ab\n<|assistant|>");
  EXPECT_EQ(ok(api_kind::chat, {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"logprobs", false}})
                .gen.params.logprobs, -1);
}

struct bad_case {
  const char* name;
  api_kind kind;
  const char* body;
  const char* param;  // expected error param ("" = null)
};

TEST_F(openai_api_test, rejects_every_bad_value_with_the_field_name) {
  const bad_case cases[] = {
      {"missing prompt", api_kind::completion, R"({})", "prompt"},
      {"empty prompt", api_kind::completion, R"({"prompt": ""})", "prompt"},
      {"empty id list", api_kind::completion, R"({"prompt": []})", "prompt"},
      {"prompt type", api_kind::completion, R"({"prompt": 5})", "prompt"},
      {"mixed prompt list", api_kind::completion, R"({"prompt": ["a", [1]]})", "prompt"},
      {"nested prompt list", api_kind::completion, R"({"prompt": [[[1]]]})", "prompt"},
      {"empty prompt in list", api_kind::completion, R"({"prompt": ["a", ""]})", "prompt"},
      {"id range", api_kind::completion, R"({"prompt": [1, 600]})", "prompt"},
      {"negative id", api_kind::completion, R"({"prompt": [-1]})", "prompt"},
      {"temperature type", api_kind::completion, R"({"prompt": "a", "temperature": "hot"})", "temperature"},
      {"temperature range", api_kind::completion, R"({"prompt": "a", "temperature": -1})", "temperature"},
      {"top_p zero", api_kind::completion, R"({"prompt": "a", "top_p": 0})", "top_p"},
      {"top_p range", api_kind::completion, R"({"prompt": "a", "top_p": 1.5})", "top_p"},
      {"top_k range", api_kind::completion, R"({"prompt": "a", "top_k": -2})", "top_k"},
      {"top_k type", api_kind::completion, R"({"prompt": "a", "top_k": 1.5})", "top_k"},
      {"min_p range", api_kind::completion, R"({"prompt": "a", "min_p": 2})", "min_p"},
      {"presence range", api_kind::completion, R"({"prompt": "a", "presence_penalty": 3})", "presence_penalty"},
      {"frequency range", api_kind::completion, R"({"prompt": "a", "frequency_penalty": -3})", "frequency_penalty"},
      {"repetition zero", api_kind::completion, R"({"prompt": "a", "repetition_penalty": 0})", "repetition_penalty"},
      {"max_tokens zero", api_kind::completion, R"({"prompt": "a", "max_tokens": 0})", "max_tokens"},
      {"max_tokens type", api_kind::completion, R"({"prompt": "a", "max_tokens": "5"})", "max_tokens"},
      {"min_tokens > max", api_kind::completion, R"({"prompt": "a", "max_tokens": 2, "min_tokens": 3})", "min_tokens"},
      {"n zero", api_kind::completion, R"({"prompt": "a", "n": 0})", "n"},
      {"n above max_n", api_kind::completion, R"({"prompt": "a", "n": 5})", "n"},
      {"stop type", api_kind::completion, R"({"prompt": "a", "stop": 5})", "stop"},
      {"stop element", api_kind::completion, R"({"prompt": "a", "stop": ["a", 1]})", "stop"},
      {"seed type", api_kind::completion, R"({"prompt": "a", "seed": "x"})", "seed"},
      {"logit_bias key", api_kind::completion, R"({"prompt": "a", "logit_bias": {"x": 1}})", "logit_bias"},
      {"logit_bias range", api_kind::completion, R"({"prompt": "a", "logit_bias": {"5": 101}})", "logit_bias"},
      {"logit_bias vocab", api_kind::completion, R"({"prompt": "a", "logit_bias": {"9999": 1}})", "logit_bias"},
      {"logprobs range", api_kind::completion, R"({"prompt": "a", "logprobs": 21})", "logprobs"},
      {"logprobs bool", api_kind::completion, R"({"prompt": "a", "logprobs": true})", "logprobs"},
      {"stop_token_ids", api_kind::completion, R"({"prompt": "a", "stop_token_ids": [1, "x"]})", "stop_token_ids"},
      {"ignore_eos type", api_kind::completion, R"({"prompt": "a", "ignore_eos": 1})", "ignore_eos"},
      {"stream type", api_kind::completion, R"({"prompt": "a", "stream": "yes"})", "stream"},
      {"stream_options w/o stream", api_kind::completion, R"({"prompt": "a", "stream_options": {"include_usage": true}})", "stream_options"},
      {"include_usage type", api_kind::completion, R"({"prompt": "a", "stream": true, "stream_options": {"include_usage": 1}})", "stream_options.include_usage"},
      {"echo with n", api_kind::completion, R"({"prompt": "a", "echo": true, "n": 2})", "echo"},
      {"echo with best_of", api_kind::completion, R"({"prompt": "a", "echo": true, "best_of": 1})", "echo"},
      {"echo type", api_kind::completion, R"({"prompt": "a", "echo": 1})", "echo"},
      {"echo on chat", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "echo": true})", "echo"},
      {"prompt_logprobs range", api_kind::completion, R"({"prompt": "a", "prompt_logprobs": 21})", "prompt_logprobs"},
      {"chat prompt_logprobs range", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "prompt_logprobs": -1})", "prompt_logprobs"},
      {"logprobs_mode", api_kind::completion, R"({"prompt": "a", "logprobs_mode": "logits"})", "logprobs_mode"},
      {"max_tokens below zero with echo", api_kind::completion, R"({"prompt": "a", "echo": true, "max_tokens": -1})", "max_tokens"},
      {"best_of", api_kind::completion, R"({"prompt": "a", "best_of": 2})", "best_of"},
      {"model type", api_kind::completion, R"({"prompt": "a", "model": 1})", "model"},
      {"missing messages", api_kind::chat, R"({})", "messages"},
      {"empty messages", api_kind::chat, R"({"messages": []})", "messages"},
      {"message role", api_kind::chat, R"({"messages": [{"content": "x"}]})", "messages"},
      {"message content", api_kind::chat, R"({"messages": [{"role": "user", "content": 5}]})", "messages"},
      {"image part", api_kind::chat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages"},
      {"chat logprobs int", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 2})", "logprobs"},
      {"top_logprobs alone", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {"top_logprobs range", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 30})", "top_logprobs"},
      {"max_completion_tokens", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -1})", "max_completion_tokens"},
      {"template kwargs", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": 1})", "chat_template_kwargs"},
      {"prompt nested 3", api_kind::completion, R"({"prompt": [[[1]]]})", "prompt"},
      {"prompt string in id list", api_kind::completion, R"({"prompt": [["a"]]})", "prompt"},
      {"prompt mixed id list", api_kind::completion, R"({"prompt": [[1, "a"]]})", "prompt"},
      {"prompt empty inner list", api_kind::completion, R"({"prompt": [[]]})", "prompt"},
      {"prompt id batch with a string", api_kind::completion, R"({"prompt": [[1], "a"]})", "prompt"},
      {"prompt ids then list", api_kind::completion, R"({"prompt": [1, [2]]})", "prompt"},
      {"prompt object", api_kind::completion, R"({"prompt": {"a": 1}})", "prompt"},
      {"response_format type", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}})", "response_format.type"},
      {"response_format no json_schema", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}})", "response_format.json_schema"},
      {"response_format schema type", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": 5}}})", "response_format.json_schema.schema"},
      {"response_format strict type", api_kind::completion, R"({"prompt": "a", "response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": "yes", "schema": {}}}})", "response_format.json_schema.strict"},
      {"schema refused by the compiler", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"properties": {"x": {"$bad": 1}}}}}})", "response_format.json_schema.schema"},
      {"guided_json text", api_kind::completion, R"({"prompt": "a", "guided_json": "{not json"})", "guided_json"},
      {"guided_choice empty", api_kind::completion, R"({"prompt": "a", "guided_choice": []})", "guided_choice"},
      {"guided_choice numbers", api_kind::completion, R"({"prompt": "a", "guided_choice": [1, 2]})", "guided_choice"},
      {"guided_regex empty", api_kind::completion, R"({"prompt": "a", "guided_regex": ""})", "guided_regex"},
      {"structured_outputs type", api_kind::completion, R"({"prompt": "a", "structured_outputs": "json"})", "structured_outputs"},
      {"structured_outputs grammar", api_kind::completion, R"({"prompt": "a", "structured_outputs": {"grammar": 3}})", "structured_outputs.grammar"},
      {"two constraints", api_kind::completion, R"({"prompt": "a", "response_format": {"type": "json_object"}, "guided_regex": "a+"})", "guided_regex"},
      {"response_format string", api_kind::completion, R"({"prompt": "a", "response_format": "json"})", "response_format"},
      {"tools malformed", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "a b"}}]})", "tools"},
      {"tools on completions", api_kind::completion, R"({"prompt": "a", "tools": [{"type": "function"}]})", "tools"},
      {"tool_choice auto", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"})", "tool_choice"},
      {"tool_choice object", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function", "function": {"name": "f"}}})", "tool_choice"},
      {"functions", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "functions": [{"name": "f"}]})", "functions"},
      {"function_call", api_kind::chat, R"({"messages": [{"role": "user", "content": "x"}], "function_call": "auto"})", "function_call"},
  };
  for (const bad_case& c : cases) {
    SCOPED_TRACE(c.name);
    api_error e = bad(c.kind, json::parse(c.body));
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param, c.param);
    EXPECT_FALSE(e.message.empty());
  }
}

TEST_F(openai_api_test, prompt_beyond_session_len_is_a_400_with_the_numbers) {
  api_error e = bad(api_kind::completion, {{"prompt", "0123456789"}, {"max_tokens", 60}});
  EXPECT_EQ(e.code, "context_too_long");
  EXPECT_NE(e.message.find("64"), std::string::npos);
  EXPECT_NE(e.message.find("71"), std::string::npos);  // 11 prompt + 60
  std::vector<int32_t> long_prompt(64, 5);
  EXPECT_EQ(bad(api_kind::completion, {{"prompt", long_prompt}}).code, "context_too_long");
  EXPECT_EQ(ok(api_kind::completion, {{"prompt", "0123456789"}, {"max_tokens", 53}}).gen.params.max_tokens, 53);
}

TEST_F(openai_api_test, malformed_json_and_non_objects_are_400) {
  EXPECT_TRUE(is_error(parse_json_body("{")));
  EXPECT_TRUE(is_error(parse_json_body("[1]")));
  EXPECT_FALSE(is_error(parse_json_body("{}")));
  EXPECT_EQ(std::get<api_error>(parse_json_body("nope")).status, 400);
}

// Depth-d JSON texts, built as text (a deep nlohmann value is what the limit keeps out).
std::string deep_list(const std::string& head, size_t depth, const std::string& tail = "}") {
  return head + std::string(depth, '[') + std::string(depth, ']') + tail;
}
std::string deep_object(const std::string& head, size_t depth, const std::string& tail = "}") {
  std::string s = head;
  for (size_t i = 0; i < depth; ++i) s += R"({"a":)";
  s += "1";
  s += std::string(depth, '}');
  return s + tail;
}

TEST(json_guard, measures_nesting_outside_strings) {
  EXPECT_EQ(json_nesting_depth("1", 64), 0);
  EXPECT_EQ(json_nesting_depth("[1]", 64), 1);
  EXPECT_EQ(json_nesting_depth(R"({"a":[[]],"b":{}})", 64), 3);
  EXPECT_EQ(json_nesting_depth(R"({"a":"[[[[{{{{"})", 64), 1);       // brackets in strings do not count
  EXPECT_EQ(json_nesting_depth(R"({"a":"\"[[[["})", 64), 1);          // nor after an escaped quote
  EXPECT_EQ(json_nesting_depth(R"({"a\\":[[1]]})", 64), 3);           // an escaped backslash ends the key
  EXPECT_EQ(json_nesting_depth(std::string(100000, '['), 64), 65);    // stops past the limit
}

TEST(json_guard, describes_client_values_in_a_bounded_prefix) {
  EXPECT_EQ(describe_json(json(7)), "7");
  EXPECT_EQ(describe_json(json("ab")), "\"ab\"");
  const std::string big = describe_json(json(std::string(100000, 'x')));
  EXPECT_LE(big.size(), 100u);
  EXPECT_EQ(big.substr(0, 4), "\"xxx");
  EXPECT_EQ(describe_json(json::array({1, 2})), "a list of 2 items");
  // A value far deeper than the stack allows a recursive walk: described without walking it.
  json deep = 1;
  for (int i = 0; i < 200000; ++i) {
    json wrap = json::array();
    wrap.push_back(std::move(deep));
    deep = std::move(wrap);
  }
  EXPECT_EQ(describe_json(deep), "a list of 1 items");
  EXPECT_EQ(describe_json(json::object()), "an object");
}

TEST_F(openai_api_test, json_nested_past_the_limit_is_a_400_naming_it) {
  const std::string bodies[] = {
      deep_list(R"({"prompt":"hi","x":)", 100000),
      deep_object(R"({"prompt":"hi","x":)", 100000),
      deep_list(R"({"prompt":)", 100000),
      deep_list(R"({"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":{"k":)", 100000, "}}"),
      deep_list(R"({"tokens":)", 100000),
  };
  for (const std::string& b : bodies) {
    SCOPED_TRACE(b.substr(0, 40));
    auto r = parse_json_body(b);
    ASSERT_TRUE(is_error(r));
    const api_error& e = std::get<api_error>(r);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "json_too_deep");
    EXPECT_NE(e.message.find("64"), std::string::npos) << e.message;
    EXPECT_LT(api_error_body(e).size(), 400u);
  }
  // The limit is exact and configurable: the body object is level 1.
  EXPECT_FALSE(is_error(parse_json_body(deep_list(R"({"x":)", 63))));
  EXPECT_TRUE(is_error(parse_json_body(deep_list(R"({"x":)", 64))));
  EXPECT_FALSE(is_error(parse_json_body(deep_list(R"({"x":)", 9), 10)));
  auto ten = parse_json_body(deep_list(R"({"x":)", 10), 10);
  ASSERT_TRUE(is_error(ten));
  EXPECT_NE(std::get<api_error>(ten).message.find("10 levels"), std::string::npos);
}

TEST_F(openai_api_test, deep_values_within_the_limit_are_refused_without_a_walk) {
  // A prompt nested as deep as the limit allows is one 400, not unwrapped level by level.
  auto body = parse_json_body(deep_list(R"({"prompt":)", 63));
  ASSERT_FALSE(is_error(body));
  EXPECT_EQ(bad(api_kind::completion, std::get<json>(body)).param, "prompt");
  EXPECT_TRUE(is_error(tokenize_body(std::get<json>(body), ctx)));
  // Deep kwargs reach the template by reference.
  auto chat = parse_json_body(deep_list(
      R"({"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":{"k":)", 62, "}}"));
  ASSERT_FALSE(is_error(chat));
  EXPECT_FALSE(is_error(parse_openai_request(api_kind::chat, std::get<json>(chat), ctx)));
}

TEST_F(openai_api_test, default_valued_tool_fields_are_accepted_as_no_ops) {
  const json messages = {{{"role", "user"}, {"content", "x"}}};
  EXPECT_EQ(ok(api_kind::chat, {{"messages", messages}, {"response_format", {{"type", "text"}}}}).gen.prompt_ids.empty(), false);
  ok(api_kind::chat, {{"messages", messages}, {"tool_choice", "none"}});
  ok(api_kind::chat, {{"messages", messages}, {"tools", json::array()}, {"functions", json::array()}});
  ok(api_kind::chat, {{"messages", messages}, {"function_call", "none"}, {"response_format", nullptr}});
  EXPECT_TRUE(ok(api_kind::chat, {{"messages", messages}, {"response_format", {{"type", "text"}}}}).gen.constraint.empty());
  EXPECT_EQ(codec.num_compiles, 0) << "nothing to compile without a constraint";
}

TEST_F(openai_api_test, structured_output_fields_become_a_compiled_constraint) {
  using kind = constraint_spec::kind;
  const json messages = {{{"role", "user"}, {"content", "x"}}};
  const json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}, {"required", {"a"}}};
  struct expect_case {
    const char* name;
    api_kind api;
    json fields;
    kind type;
    std::string text;
  };
  const expect_case cases[] = {
      {"json_object", api_kind::chat, {{"response_format", {{"type", "json_object"}}}}, kind::json_object, ""},
      {"json_schema", api_kind::chat,
       {{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a"}, {"schema", schema}, {"strict", true}}}}}},
       kind::json_schema, schema.dump()},
      {"json_schema on completions", api_kind::completion,
       {{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a"}, {"schema", schema}}}}}},
       kind::json_schema, schema.dump()},
      {"json_schema without a schema", api_kind::chat,
       {{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a"}}}}}}, kind::json_object, ""},
      {"structured_outputs.json", api_kind::chat, {{"structured_outputs", {{"json", schema}}}}, kind::json_schema, schema.dump()},
      {"structured_outputs.json as text keeps its order", api_kind::completion,
       {{"structured_outputs", {{"json", R"({"type": "object", "properties": {"z": {}, "a": {}}})"}}}}, kind::json_schema,
       R"({"type": "object", "properties": {"z": {}, "a": {}}})"},
      {"structured_outputs.regex", api_kind::completion, {{"structured_outputs", {{"regex", "[0-9]+"}}}}, kind::regex, "[0-9]+"},
      {"structured_outputs.choice", api_kind::chat, {{"structured_outputs", {{"choice", {"yes", "no"}}}}}, kind::choice,
       R"(["yes","no"])"},
      {"structured_outputs.grammar", api_kind::completion, {{"structured_outputs", {{"grammar", "root ::= \"a\""}}}},
       kind::grammar, "root ::= \"a\""},
      {"structured_outputs.json_object", api_kind::chat, {{"structured_outputs", {{"json_object", true}}}}, kind::json_object, ""},
      {"guided_json", api_kind::completion, {{"guided_json", schema}}, kind::json_schema, schema.dump()},
      {"guided_regex", api_kind::chat, {{"guided_regex", "a|b"}}, kind::regex, "a|b"},
      {"guided_choice", api_kind::completion, {{"guided_choice", {"x"}}}, kind::choice, R"(["x"])"},
      {"guided_grammar", api_kind::chat, {{"guided_grammar", "root ::= [a-z]+"}}, kind::grammar, "root ::= [a-z]+"},
  };
  for (const expect_case& c : cases) {
    SCOPED_TRACE(c.name);
    json body = c.fields;
    if (c.api == api_kind::chat) {
      body["messages"] = messages;
    } else {
      body["prompt"] = "p";
    }
    const int before = codec.num_compiles;
    openai_request r = ok(c.api, body);
    EXPECT_EQ(r.gen.constraint.type, c.type);
    EXPECT_EQ(r.gen.constraint.text, c.text);
    EXPECT_NE(r.gen.compiled, nullptr) << "compiled in the listener, before queuing";
    EXPECT_EQ(codec.num_compiles, before + 1);
  }
}

TEST_F(openai_api_test, a_refused_schema_is_a_400_carrying_the_compilers_path) {
  const json body = {{"prompt", "p"},
                     {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a"}, {"schema", {{"$bad", 1}}}}}}}};
  api_error e = bad(api_kind::completion, body);
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("$.properties.x"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("$bad"), std::string::npos) << e.message;
  EXPECT_EQ(e.param, "response_format.json_schema.schema");
}

TEST_F(openai_api_test, text_prompts_need_a_tokenizer) {
  api_context no_tok{nullptr, 64, 512, 4, "m"};
  auto r = parse_openai_request(api_kind::completion, {{"prompt", "hi"}}, no_tok);
  ASSERT_TRUE(is_error(r));
  EXPECT_EQ(std::get<api_error>(r).code, "unsupported");
  EXPECT_FALSE(is_error(parse_openai_request(api_kind::completion, {{"prompt", {1, 2}}}, no_tok)));
}

TEST_F(openai_api_test, tokenize_body_takes_prompt_or_messages) {
  auto a = tokenize_body({{"prompt", "ab"}}, ctx);
  EXPECT_EQ(std::get<std::vector<int32_t>>(a).size(), 3u);
  auto b = tokenize_body({{"prompt", "ab"}, {"add_special_tokens", false}}, ctx);
  EXPECT_EQ(std::get<std::vector<int32_t>>(b).size(), 2u);
  auto c = tokenize_body({{"messages", {{{"role", "user"}, {"content", "x"}}}}}, ctx);
  EXPECT_FALSE(is_error(c));
  EXPECT_TRUE(is_error(tokenize_body({{"prompt", 3}}, ctx)));
  EXPECT_TRUE(is_error(tokenize_body(json::parse(R"({"prompt": [[[1]]]})"), ctx)));
  EXPECT_EQ(std::get<std::vector<int32_t>>(tokenize_body(json::parse(R"({"prompt": [[4, 5]]})"), ctx)),
            (std::vector<int32_t>{4, 5}));
  auto one = tokenize_body(json::parse(R"({"prompt": ["ab"], "add_special_tokens": false})"), ctx);
  EXPECT_EQ(std::get<std::vector<int32_t>>(one).size(), 2u);
}

TEST(openai_error, maps_errc_to_http_status) {
  EXPECT_EQ(to_api_error(make_error(errc::invalid_argument, "x")).status, 400);
  EXPECT_EQ(to_api_error(make_error(errc::context_too_long, "x")).status, 400);
  EXPECT_EQ(to_api_error(make_error(errc::unauthorized, "x")).status, 401);
  EXPECT_EQ(to_api_error(make_error(errc::not_found, "x")).status, 404);
  api_error busy = to_api_error(make_error(errc::overloaded, "x"));
  EXPECT_EQ(busy.status, 429);
  EXPECT_GT(busy.retry_after_s, 0);
  api_error drain = to_api_error(make_error(errc::draining, "x"));
  EXPECT_EQ(drain.status, 503);
  EXPECT_GT(drain.retry_after_s, 0);
  api_error lost = to_api_error(make_error(errc::unavailable, "worker went away"));
  EXPECT_EQ(lost.status, 503);
  EXPECT_EQ(lost.code, "unavailable");
  EXPECT_GT(lost.retry_after_s, 0);
  EXPECT_EQ(to_api_error(make_error(errc::device_error, "x")).status, 500);
  json body = api_error_json(bad_request("m", "p"));
  EXPECT_EQ(body["error"]["message"], "m");
  EXPECT_EQ(body["error"]["param"], "p");
  EXPECT_TRUE(body["error"]["code"].is_null());
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
}

TEST(openai_response, final_body_has_choices_usage_and_logprobs) {
  test::fake_codec codec;
  openai_request req;
  req.kind = api_kind::completion;
  req.model = "m";
  req.gen.n = 2;
  req.gen.params.logprobs = 1;
  req.gen.prompt_ids = {1, 2, 3};
  response_meta meta = make_response_meta(req, "abc");
  EXPECT_EQ(meta.id, "cmpl-abc");
  generation_tracker t(2, 3, true);
  generation_event e0{"abc", 0, {'h'}, "h", {{'h', -0.1f, {{'h', -0.1f}}}}, finish_reason::none, {}, 0.0};
  generation_event e1{"abc", 1, {'x'}, "x", {{'x', -0.2f, {{'x', -0.2f}}}}, finish_reason::length, {}, 0.0};
  generation_event e2{"abc", 0, {'i'}, "i", {{'i', -0.3f, {{'i', -0.3f}}}}, finish_reason::stop, {3, 3, 1}, 0.0};
  EXPECT_TRUE(t.add(e0));
  EXPECT_TRUE(t.add(e1));
  EXPECT_FALSE(t.done());
  EXPECT_TRUE(t.add(e2));
  EXPECT_FALSE(t.add(e2));  // a finished choice ignores further events
  EXPECT_TRUE(t.done());
  json body = final_response(meta, t, &codec);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][0]["text"], "hi");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(body["choices"][0]["logprobs"]["tokens"], json({"h", "i"}));
  EXPECT_EQ(body["choices"][0]["logprobs"]["text_offset"], json({0, 1}));
  EXPECT_EQ(body["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(body["usage"]["completion_tokens"], 3);
  EXPECT_EQ(body["usage"]["total_tokens"], 6);
  EXPECT_EQ(body["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
}

// Echo: the prompt's text prefixes the choice, its tokens lead the logprobs (the first null), the
// top_logprobs keep the engine's best-first order, and text_offset counts in the echoed text.
TEST(openai_response, echo_prefixes_prompt_text_and_logprobs_in_order) {
  test::fake_codec codec;
  openai_request req;
  req.kind = api_kind::completion;
  req.model = "m";
  req.echo = true;
  req.gen.params.logprobs = 2;
  req.prompts = {{{'a', 'b'}, "ab"}, {{'c'}, "c"}};
  req.system_fingerprint = "fp_x";
  response_meta meta = make_response_meta(req, "e");
  generation_tracker t(2, 3, true, 2);
  // 'z' is more likely than 'a' here: alphabetical order would put 'a' first.
  generation_event e0{"e", 0, {'!'}, "!", {{'!', -0.5f, {{'z', -0.1f}, {'a', -0.4f}}}}, finish_reason::length,
                      {2, 1, 0}, 0.0, {{'b', -1.5f, {{'z', -0.2f}, {'b', -1.5f}}}}};
  generation_event e1{"e", 1, {}, "", {}, finish_reason::length, {1, 0, 0}, 0.0, {}};
  EXPECT_TRUE(t.add(e0));
  EXPECT_TRUE(t.add(e1));
  const std::string body_text = dump_json(final_response(meta, t, &codec));
  // Best first as serialized ('z' before 'a', which alphabetical order would put first).
  const auto ordered = nlohmann::ordered_json::parse(body_text);
  const auto& gen_top = ordered["choices"][0]["logprobs"]["top_logprobs"][2];
  ASSERT_EQ(gen_top.size(), 2u);
  EXPECT_EQ(gen_top.begin().key(), "z");
  json body = json::parse(body_text);
  EXPECT_EQ(body["system_fingerprint"], "fp_x");
  EXPECT_EQ(body["choices"][0]["text"], "ab!");
  EXPECT_EQ(body["choices"][1]["text"], "c");
  const json& lp = body["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json({"a", "b", "!"}));
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(lp["token_logprobs"][1].get<float>(), -1.5f);
  EXPECT_EQ(lp["text_offset"], json({0, 1, 2}));
  EXPECT_EQ(body["choices"][1]["logprobs"]["tokens"], json({"c"}));
  EXPECT_EQ(body["usage"]["prompt_tokens"], 3);  // both prompts
  EXPECT_EQ(body["usage"]["completion_tokens"], 1);
}

TEST(openai_response, text_offset_starts_after_the_prompt_without_echo) {
  test::fake_codec codec;
  openai_request req;
  req.kind = api_kind::completion;
  req.gen.params.logprobs = 0;
  req.prompts = {{{'a', 'b'}, "ab"}};
  response_meta meta = make_response_meta(req, "o");
  generation_tracker t(1, 2, true);
  EXPECT_TRUE(t.add(generation_event{"o", 0, {'x', 'y'}, "xy", {{'x', -1.f, {}}, {'y', -1.f, {}}}, finish_reason::stop, {}, 0.0}));
  json body = final_response(meta, t, &codec);
  EXPECT_EQ(body["choices"][0]["logprobs"]["text_offset"], json({2, 3}));
  EXPECT_EQ(initial_text_offset(meta, 0), 2);
}

TEST(openai_response, chat_chunks_carry_role_once_and_logprob_content) {
  test::fake_codec codec;
  openai_request req;
  req.kind = api_kind::chat;
  req.model = "m";
  req.gen.params.logprobs = 0;
  response_meta meta = make_response_meta(req, "q");
  generation_event ev{"q", 0, {'o'}, "o", {{'o', -1.0f, {}}}, finish_reason::none, {}, 0.0};
  int64_t offset = 0;
  json first = json::parse(stream_chunk(meta, ev, &codec, true, true, offset));
  EXPECT_EQ(offset, 1);  // advanced past the chunk's text
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "o");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(first.contains("usage") && first["usage"].is_null());
  EXPECT_EQ(first["choices"][0]["logprobs"]["content"][0]["token"], "o");
  EXPECT_EQ(first["choices"][0]["logprobs"]["content"][0]["bytes"], json({111}));
  json next = json::parse(stream_chunk(meta, ev, &codec, false, false, offset));
  EXPECT_FALSE(next["choices"][0]["delta"].contains("role"));
  EXPECT_FALSE(next.contains("usage"));
  json usage = json::parse(usage_chunk(meta, {4, 2, 0}));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 6);
}

}  // namespace
}  // namespace troupe
