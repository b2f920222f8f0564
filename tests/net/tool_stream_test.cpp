// tool_stream: answers under tools streamed token by token. Fed in every split (byte by byte and
// in chunks), the assembled content and calls equal the non-streamed parse; calls open before
// their arguments end; text that cannot be a call is sent before the answer ends.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "net/native_tool_format.h"
#include "net/openai_response.h"
#include "net/tool_stream.h"

namespace troupe {
namespace {

const std::vector<std::string> k_known{"get_weather", "get_time"};

struct assembled {
  std::string content;
  std::vector<std::pair<std::string, std::string>> calls;  // name, arguments
  bool as_calls = false;
  int32_t argument_parts = 0;      // fragments of arguments before finish()
  size_t content_before_end = 0;  // bytes of content sent before finish()
  bool head_before_end = false;
};

void add(const tool_delta& d, assembled& a, bool before_end) {
  a.content += d.content;
  if (before_end) a.content_before_end += d.content.size();
  for (const tool_delta::call_part& c : d.calls) {
    if (c.head) {
      ASSERT_EQ(static_cast<size_t>(c.index), a.calls.size()) << "heads come in order";
      a.calls.push_back({c.name, ""});
      if (before_end) a.head_before_end = true;
    } else {
      ASSERT_LT(static_cast<size_t>(c.index), a.calls.size()) << "arguments follow their head";
      a.calls[static_cast<size_t>(c.index)].second += c.arguments;
      if (before_end && !c.arguments.empty()) ++a.argument_parts;
    }
  }
}

assembled stream(tool_format f, const std::string& text, size_t piece, finish_reason fin = finish_reason::stop) {
  tool_stream ts(f, k_known);
  assembled a;
  for (size_t at = 0; at < text.size(); at += piece) add(ts.feed(text.substr(at, piece)), a, true);
  add(ts.finish(fin, a.as_calls), a, false);
  return a;
}

// Every split gives what the non-streamed parse gives.
void expect_equal_to_parse(tool_format f, const std::string& text) {
  const tool_output want = parse_native_tool_output(f, text, k_known);
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, text.size()}) {
    const assembled a = stream(f, text, piece);
    EXPECT_EQ(a.as_calls, want.is_calls) << text << " piece " << piece;
    EXPECT_EQ(a.content, want.content) << text << " piece " << piece;
    ASSERT_EQ(a.calls.size(), want.calls.size()) << text << " piece " << piece;
    for (size_t i = 0; i < a.calls.size(); ++i) {
      EXPECT_EQ(a.calls[i].first, want.calls[i].name) << text;
      EXPECT_EQ(a.calls[i].second, want.calls[i].arguments) << text << " piece " << piece;
    }
  }
}

TEST(tool_stream, every_split_assembles_the_non_streamed_answer) {
  const std::vector<std::pair<tool_format, std::string>> cases = {
      {tool_format::generic, R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}, {"name": "get_time", "arguments": {}}]})"},
      {tool_format::generic, R"({"content": "It is \"sunny\" \u00e9\ud83d\ude00 in Paris.\n"})"},
      {tool_format::generic, R"({"content": {"answer": "a b", "n": [1, {"x": "}"}]}})"},
      {tool_format::generic, "Just prose, no envelope."},
      {tool_format::generic, R"({"tool_calls": [{"name": "rm_rf", "arguments": {}}]})"},
      {tool_format::hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n"
                            "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call>"},
      {tool_format::hermes, "Let me check.\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Köln\"}}\n</tool_call>"},
      {tool_format::hermes, "It is sunny <b>today</b>. "},
      {tool_format::hermes, "<tool_call>{\"arguments\": {\"city\": \"X\"}, \"name\": \"get_weather\"}</tool_call>"},
      {tool_format::hermes, "<tool_call>{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"UTC\\\"}\"}</tool_call>"},
      {tool_format::llama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"a;b\"}}; {\"name\": \"get_time\", \"parameters\": {}}"},
      {tool_format::llama3, "<|python_tag|>{\"name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}}"},
      {tool_format::llama3, "The weather is fine."},
      {tool_format::mistral, "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, "
                             "{\"name\": \"get_time\", \"arguments\": {}, \"id\": \"abc123XYZ\"}]"},
      {tool_format::mistral, "Sure. [TOOL_CALLS] [{\"name\": \"get_time\", \"arguments\": {}}]"},
      {tool_format::pythonic, "[get_weather(city=\"Paris\", days=3), get_time()]"},
      {tool_format::pythonic, "No call here."},
      {tool_format::pythonic, "[get_weather(city='it\\'s \"Köln\"\\n', days=1.50, opts={'a': [True, None, -2e3]}, ), get_time() ]"},
      {tool_format::pythonic, "<|python_tag|>[get_time(tz=\"UTC\")]"},
      {tool_format::pythonic, "[1, 2, 3] is a list."},
      {tool_format::pythonic, "[rm_rf(path=\"/\")]"},
  };
  for (const auto& [f, text] : cases) expect_equal_to_parse(f, text);
}

TEST(tool_stream, a_call_opens_then_its_arguments_arrive_in_fragments) {
  const std::string generic = R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]})";
  const std::string hermes = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>";
  const std::string pythonic = "[get_weather(city=\"Paris\", unit='c')]";
  for (const auto& [f, text] : {std::pair{tool_format::generic, generic}, std::pair{tool_format::hermes, hermes},
                                std::pair{tool_format::pythonic, pythonic}}) {
    const assembled a = stream(f, text, 4);
    EXPECT_TRUE(a.head_before_end) << text;
    EXPECT_GT(a.argument_parts, 1) << "the arguments are sent as they are written: " << text;
    EXPECT_EQ(a.calls.at(0).second, R"({"city":"Paris","unit":)" + std::string(f == tool_format::generic ? "\"celsius\"}" : "\"c\"}"));
  }
  // A pythonic call opens once `name(` is written; a keyword goes out once its value is whole.
  tool_stream py(tool_format::pythonic, k_known);
  EXPECT_TRUE(py.feed("[get_wea").calls.empty());
  tool_delta d = py.feed("ther(city=\"Par");
  ASSERT_EQ(d.calls.size(), 2u);
  EXPECT_TRUE(d.calls[0].head);
  EXPECT_EQ(d.calls[1].arguments, "{");
  EXPECT_TRUE(py.feed("is\", days=1").calls.at(0).arguments == R"("city":"Paris")");
  EXPECT_TRUE(py.feed("2").calls.empty()) << "a number may go on";
  EXPECT_EQ(py.feed(")").calls.at(0).arguments, R"(,"days":12)");
}

TEST(tool_stream, text_is_held_only_while_it_could_be_a_call) {
  // Prose is sent as it comes, but not a tail that could open a tag, nor whitespace before one.
  tool_stream h(tool_format::hermes, k_known);
  EXPECT_EQ(h.feed("It is").content, "It is");
  EXPECT_EQ(h.feed(" sunny <tool").content, " sunny");
  EXPECT_EQ(h.feed("box> ok").content, " <toolbox> ok");
  bool calls = true;
  EXPECT_EQ(h.finish(finish_reason::stop, calls).content, "");
  EXPECT_FALSE(calls);

  // The generic envelope's content is decoded as it is written; plain text passes at once.
  tool_stream g(tool_format::generic, k_known);
  EXPECT_EQ(g.feed("{\"con").content, "");
  EXPECT_EQ(g.feed("tent\": \"Hel").content, "Hel");
  EXPECT_EQ(g.feed("lo\\").content, "lo");
  EXPECT_EQ(g.feed("nthere\"}").content, "\nthere");
  tool_stream plain(tool_format::generic, k_known);
  EXPECT_EQ(plain.feed("  Sure").content, "  Sure");
  tool_stream l(tool_format::llama3, k_known);
  EXPECT_EQ(l.feed("{\"name\": \"weather_report\"").content, "{\"name\": \"weather_report\"")
      << "an unknown name is no call";
}

TEST(tool_stream, a_truncated_call_ends_with_the_engines_reason) {
  const std::string text = R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Par)";
  const assembled a = stream(tool_format::generic, text, 5, finish_reason::length);
  EXPECT_FALSE(a.as_calls);
  ASSERT_EQ(a.calls.size(), 1u) << "what was sent stays sent, as OpenAI streams a cut-off call";
  EXPECT_EQ(a.calls[0].second, R"({"city":"Par)");
}

TEST(tool_stream, a_call_the_answer_then_spoils_stays_sent_but_the_answer_is_no_calls) {
  // What was sent stays sent (OpenAI's streams cannot take a call back); the final parse, and so
  // finish_reason, say the answer is text. The same for every format: text after the calls, or a
  // pythonic call that repeats a keyword.
  for (const auto& [f, text] : {std::pair{tool_format::hermes, std::string("<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call> and more")},
                                std::pair{tool_format::pythonic, std::string("[get_time(tz=1)] and more")},
                                std::pair{tool_format::pythonic, std::string("[get_time(tz=1, tz=2)]")}}) {
    EXPECT_FALSE(parse_native_tool_output(f, text, k_known).is_calls) << text;
    const assembled a = stream(f, text, 3);
    EXPECT_FALSE(a.as_calls) << text;
    ASSERT_EQ(a.calls.size(), 1u) << text;
    EXPECT_EQ(a.calls[0].first, "get_time");
    EXPECT_EQ(a.content, "") << text;
  }
}

TEST(tool_stream, a_delta_becomes_one_chat_delta_for_websocket_frames) {
  tool_stream ts(tool_format::generic, k_known);
  std::vector<std::string> ids;
  tool_delta d = ts.feed(R"({"tool_calls": [{"name": "get_time", "arguments": {"tz": "U)");
  const nlohmann::ordered_json first = tool_delta_json(d, ids);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(first, (nlohmann::ordered_json{{"tool_calls", {{{"index", 0}, {"id", ids[0]}, {"type", "function"},
                                                            {"function", {{"name", "get_time"}, {"arguments", R"({"tz":"U)"}}}}}}}))
      << "the call's head and its first fragment in one part";
  d = ts.feed(R"(TC"}}, {"name": "get_weather", "arguments": {}}]})");
  const nlohmann::ordered_json next = tool_delta_json(d, ids);
  ASSERT_EQ(ids.size(), 2u);
  ASSERT_EQ(next["tool_calls"].size(), 2u);
  EXPECT_EQ(next["tool_calls"][0], (nlohmann::ordered_json{{"index", 0}, {"function", {{"arguments", "TC\"}"}}}}));
  EXPECT_EQ(next["tool_calls"][1]["id"], ids[1]);
  EXPECT_EQ(next["tool_calls"][1]["function"]["arguments"], "{}");
  tool_delta none;
  EXPECT_TRUE(tool_delta_json(none, ids).is_null());
}

}  // namespace
}  // namespace troupe
