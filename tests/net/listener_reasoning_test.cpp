// Chat answers with <think> spans over real HTTP: streamed as delta.reasoning_content (tags split
// across events), answered whole as message.reasoning_content, and plain content when the server
// runs no parser or the request turns thinking off.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "listener_test_fixture.h"

namespace troupe::test {
namespace {

using json = nlohmann::json;

// The data of each "data: X\n\n" event of an SSE body, in order.
std::vector<std::string> data_events(const std::string& body) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < body.size();) {
    const size_t end = body.find("\n\n", pos);
    if (end == std::string::npos || body.compare(pos, 6, "data: ") != 0) break;
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end + 2;
  }
  return out;
}

const char* k_chat = R"({"messages":[{"role":"user","content":"2+2?"}],"max_tokens":16)";

class listener_reasoning_test : public listener_test {
 protected:
  void SetUp() override {
    listener_test::SetUp();
    // The tags arrive cut at odd places, as a tokenizer without them as special tokens would cut them.
    eng.pieces = {"<thi", "nk>", "add ", "them</", "thi", "nk>", "\n\n", "It's 4."};
  }
  std::pair<std::string, std::string> streamed(const std::string& body_tail) {
    auto r = request(post("/v1/chat/completions", std::string(k_chat) + R"(,"stream":true)" + body_tail + "}"));
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    std::string reasoning, content;
    for (const auto& e : data_events(r->body)) {
      if (e == "[DONE]") continue;
      const json delta = json::parse(e)["choices"][0]["delta"];
      if (delta.contains("reasoning_content")) reasoning += delta["reasoning_content"].get<std::string>();
      if (delta.contains("content")) content += delta["content"].get<std::string>();
    }
    return {reasoning, content};
  }
  json whole(const std::string& body_tail) {
    auto r = request(post("/v1/chat/completions", std::string(k_chat) + body_tail + "}"));
    EXPECT_TRUE(r);
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body)["choices"][0]["message"];
  }
};

TEST_F(listener_reasoning_test, streamed_think_span_is_reasoning_content_whatever_the_cuts) {
  opts.server.reasoning_parser = "qwen3";
  start();
  auto [reasoning, content] = streamed("");
  EXPECT_EQ(reasoning, "add them");
  EXPECT_EQ(content, "\n\nIt's 4.");
}

TEST_F(listener_reasoning_test, whole_answer_has_message_reasoning_content) {
  opts.server.reasoning_parser = "qwen3";
  start();
  json m = whole("");
  EXPECT_EQ(m["reasoning_content"], "add them");
  EXPECT_EQ(m["content"], "\n\nIt's 4.");
}

TEST_F(listener_reasoning_test, enable_thinking_false_or_separate_reasoning_false_gives_plain_content) {
  opts.server.reasoning_parser = "qwen3";
  start();
  const std::string raw = "<think>add them</think>\n\nIt's 4.";
  for (const char* tail : {R"(,"chat_template_kwargs":{"enable_thinking":false})", R"(,"separate_reasoning":false)"}) {
    json m = whole(tail);
    EXPECT_EQ(m["content"], raw) << tail;
    EXPECT_FALSE(m.contains("reasoning_content")) << tail;
    auto [reasoning, content] = streamed(tail);
    EXPECT_EQ(reasoning, "") << tail;
    EXPECT_EQ(content, raw) << tail;
  }
}

TEST_F(listener_reasoning_test, auto_without_think_in_the_template_and_none_leave_the_text_alone) {
  opts.server.reasoning_parser = "auto";  // the fake codec's template has no <think>
  start();
  EXPECT_EQ(whole("")["content"], "<think>add them</think>\n\nIt's 4.");
}

TEST_F(listener_reasoning_test, separate_reasoning_must_be_a_boolean) {
  opts.server.reasoning_parser = "qwen3";
  start();
  auto r = request(post("/v1/chat/completions", std::string(k_chat) + R"(,"separate_reasoning":"yes"})"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["param"], "separate_reasoning");
}

}  // namespace
}  // namespace troupe::test
