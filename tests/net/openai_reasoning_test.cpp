// The reasoning switch of a chat request (--reasoning-parser, chat_template_kwargs.enable_thinking,
// separate_reasoning), a prompt that opens the think span, and the response bodies it shapes.
#include <gtest/gtest.h>

#include "fake_engine.h"
#include "net/openai_api.h"
#include "net/openai_response.h"

namespace troupe {
namespace {

using json = nlohmann::json;

// A template that ends the prompt inside an opened span, as DeepSeek-R1's does.
class open_think_codec final : public text_codec {
 public:
  bool has_tokenizer() const override { return true; }
  bool has_chat_template() const override { return true; }
  int64_t vocab_size() const override { return 512; }
  result<std::vector<int32_t>> encode(const std::string& text, bool, bool) const override {
    return std::vector<int32_t>(text.begin(), text.end());
  }
  result<std::string> decode(const std::vector<int32_t>&, bool) const override { return std::string(); }
  result<std::string> render_chat(const json&, bool, const json&) const override {
    return std::string("<|user|>hi<|assistant|><think>\n");
  }
};

openai_request parse_chat(const json& body, const api_context& ctx) {
  auto r = parse_openai_request(api_kind::chat, body, ctx);
  EXPECT_FALSE(is_error(r)) << (is_error(r) ? std::get<api_error>(r).message : "");
  return is_error(r) ? openai_request{} : std::get<openai_request>(r);
}

TEST(openai_reasoning, on_by_server_off_by_request) {
  test::fake_codec codec;
  api_context ctx{&codec, 64, 512, 4, "m"};
  const json msgs = json::array({{{"role", "user"}, {"content", "hi"}}});
  EXPECT_FALSE(parse_chat({{"messages", msgs}}, ctx).separate_reasoning);  // server parser off
  ctx.reasoning = true;
  auto on = parse_chat({{"messages", msgs}}, ctx);
  EXPECT_TRUE(on.separate_reasoning);
  EXPECT_FALSE(on.reasoning_starts_open);  // fake template ends with <|assistant|>
  EXPECT_FALSE(parse_chat({{"messages", msgs}, {"chat_template_kwargs", {{"enable_thinking", false}}}}, ctx)
                   .separate_reasoning);
  EXPECT_TRUE(parse_chat({{"messages", msgs}, {"chat_template_kwargs", {{"enable_thinking", true}}}}, ctx)
                  .separate_reasoning);
  EXPECT_FALSE(parse_chat({{"messages", msgs}, {"separate_reasoning", false}}, ctx).separate_reasoning);
  // Completions never split.
  auto c = parse_openai_request(api_kind::completion, {{"prompt", "hi"}}, ctx);
  ASSERT_FALSE(is_error(c));
  EXPECT_FALSE(std::get<openai_request>(c).separate_reasoning);
}

TEST(openai_reasoning, a_prompt_ending_in_an_open_span_starts_the_answer_in_reasoning) {
  open_think_codec codec;
  api_context ctx{&codec, 64, 512, 4, "m"};
  ctx.reasoning = true;
  auto r = parse_chat({{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}}, ctx);
  EXPECT_TRUE(r.reasoning_starts_open);
  // The answer has only the closing tag; its text before it is reasoning.
  response_meta meta = make_response_meta(r, "x");
  generation_tracker t(1, 3, true);
  generation_event ev;
  ev.index = 0;
  ev.text = "compare</think>The answer.";
  ev.token_ids = {1, 2};
  ev.finish = finish_reason::stop;
  ASSERT_TRUE(t.add(ev));
  json body = final_response(meta, t, &codec);
  EXPECT_EQ(body["choices"][0]["message"]["reasoning_content"], "compare");
  EXPECT_EQ(body["choices"][0]["message"]["content"], "The answer.");
}

TEST(openai_reasoning, all_reasoning_answer_has_null_content_and_chunks_carry_the_split) {
  test::fake_codec codec;
  api_context ctx{&codec, 64, 512, 4, "m"};
  ctx.reasoning = true;
  auto r = parse_chat({{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}}, ctx);
  response_meta meta = make_response_meta(r, "x");
  generation_tracker t(1, 3, true);
  generation_event ev;
  ev.index = 0;
  ev.text = "<think>cut off by max_tokens";
  ev.token_ids = {1};
  ev.finish = finish_reason::length;
  ASSERT_TRUE(t.add(ev));
  json m = final_response(meta, t, &codec)["choices"][0]["message"];
  EXPECT_TRUE(m["content"].is_null());
  EXPECT_EQ(m["reasoning_content"], "cut off by max_tokens");
  reasoning_split split{"thought", ""};
  int64_t text_offset = 0;
  json delta = json::parse(stream_chunk(meta, ev, &codec, true, false, text_offset, &split))["choices"][0]["delta"];
  EXPECT_EQ(delta["reasoning_content"], "thought");
  EXPECT_FALSE(delta.contains("content"));
  EXPECT_EQ(delta["role"], "assistant");
}

}  // namespace
}  // namespace troupe
