// response_builder under tools: the Responses stream of an answer with function calls, fed in every
// split. The events keep OpenAI's order (a message first, then one function_call item after the
// other, each added, argument deltas, done, item done), output_index/item_id/sequence_number agree,
// the argument deltas concatenate to the final arguments, and every split's final response equals
// the one-piece (non-streamed) response and the native parse.
#include <gtest/gtest.h>

#include <map>

#include "net/native_tool_format.h"
#include "net/responses_events.h"

namespace troupe {
namespace {

using json = nlohmann::json;

const std::vector<std::string> k_known{"get_weather", "get_time"};

generation_event piece_event(const std::string& text, finish_reason f = finish_reason::none) {
  generation_event ev;
  ev.text = text;
  ev.token_ids = {1};
  ev.finish = f;
  if (f != finish_reason::none) ev.usage = usage_info{10, 2, 0};
  return ev;
}

struct streamed {
  std::vector<json> events;
  size_t fed_before_end = 0;  // events produced before the last piece
  json final_response;
};

streamed run(tool_format f, const std::string& text, size_t piece, finish_reason fin = finish_reason::stop) {
  response_builder b(responses_params{}, "resp_1", "m");
  b.expect_tool_envelope(k_known, f);
  streamed s;
  s.events = b.start();
  size_t at = 0;
  while (true) {
    const size_t n = std::min(piece, text.size() - at);
    const bool last = at + n >= text.size();
    if (last) s.fed_before_end = s.events.size();
    for (json& e : b.on_event(piece_event(text.substr(at, n), last ? fin : finish_reason::none))) s.events.push_back(e);
    at += n;
    if (last) break;
  }
  s.final_response = b.object();
  return s;
}

// The output items without their generated ids (which differ between runs).
json without_ids(json items) {
  for (json& i : items) {
    i.erase("id");
    i.erase("call_id");
  }
  return items;
}

// Checks one stream's events against the response it ends with; returns the argument deltas'
// concatenation per output_index.
std::map<int64_t, std::string> check_events(const streamed& s, const std::string& what) {
  std::map<int64_t, std::string> args, text;
  std::map<int64_t, std::string> phase;  // output_index -> the last event type seen for it
  int64_t last_added = -1;
  const json& output = s.final_response["output"];
  for (size_t i = 0; i < s.events.size(); ++i) {
    const json& e = s.events[i];
    EXPECT_EQ(e["sequence_number"], i) << what;
    const std::string type = e["type"];
    if (!e.contains("output_index")) continue;
    const int64_t index = e["output_index"];
    if (type == "response.output_item.added") {
      EXPECT_EQ(index, last_added + 1) << "items are added in output order: " << what;
      EXPECT_TRUE(last_added < 0 || phase[last_added] == "response.output_item.done")
          << "an item closes before the next opens: " << what;
      last_added = index;
      EXPECT_EQ(e["item"]["status"], "in_progress") << what;
      if (e["item"]["type"] == "function_call") {
        EXPECT_EQ(e["item"]["arguments"], "") << what;
        EXPECT_EQ(e["item"]["id"], output[index]["id"]) << what;
        EXPECT_EQ(e["item"]["call_id"], output[index]["call_id"]) << what;
        EXPECT_EQ(e["item"]["name"], output[index]["name"]) << what;
      }
    } else {
      EXPECT_EQ(index, last_added) << "events are for the open item: " << type << " " << what;
      EXPECT_NE(phase[index], "response.output_item.done") << what;
      if (e.contains("item_id")) EXPECT_EQ(e["item_id"], output[index]["id"]) << what;
    }
    if (type == "response.function_call_arguments.delta") args[index] += e["delta"].get<std::string>();
    if (type == "response.function_call_arguments.done") EXPECT_EQ(e["arguments"], args[index]) << what;
    if (type == "response.output_text.delta") text[index] += e["delta"].get<std::string>();
    if (type == "response.output_text.done") EXPECT_EQ(e["text"], text[index]) << what;
    if (type == "response.output_item.done") EXPECT_EQ(e["item"], output[index]) << what;
    phase[index] = type;
  }
  EXPECT_EQ(last_added + 1, static_cast<int64_t>(output.size())) << what;
  for (const auto& [index, p] : phase) EXPECT_EQ(p, "response.output_item.done") << what;
  for (const auto& [index, a] : args) EXPECT_EQ(output[index]["arguments"], a) << "deltas assemble the final: " << what;
  return args;
}

TEST(responses_tool_events, every_split_streams_the_non_streamed_response) {
  const std::vector<std::pair<tool_format, std::string>> cases = {
      {tool_format::generic, R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}, {"name": "get_time", "arguments": {}}]})"},
      {tool_format::generic, R"({"content": "It is \"sunny\" \u00e9\ud83d\ude00 in Paris.\n"})"},
      {tool_format::generic, "Just prose, no envelope."},
      {tool_format::generic, R"({"tool_calls": [{"name": "rm_rf", "arguments": {}}]})"},
      {tool_format::hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n"
                            "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call>"},
      {tool_format::hermes, "Let me check.\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Köln\"}}\n</tool_call>"},
      {tool_format::hermes, "<tool_call>{\"arguments\": {\"city\": \"X\"}, \"name\": \"get_weather\"}</tool_call>"},
      {tool_format::llama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"a;b\"}}; {\"name\": \"get_time\", \"parameters\": {}}"},
      {tool_format::mistral, "Sure. [TOOL_CALLS] [{\"name\": \"get_time\", \"arguments\": {}}]"},
      {tool_format::pythonic, "[get_weather(city=\"Paris\", days=3), get_time()]"},
      {tool_format::pythonic, "No call here."},
      {tool_format::pythonic, "[get_weather(city='it\\'s \"Köln\"', days=1.50, opts={'a': [True, None]}), get_time()]"},
  };
  for (const auto& [f, text] : cases) {
    const tool_output want = parse_native_tool_output(f, text, k_known);
    const streamed whole = run(f, text, text.size());
    json want_output = json::array();
    if (!want.content.empty() || !want.is_calls) {
      want_output.push_back({{"type", "message"}, {"status", "completed"}, {"role", "assistant"},
                             {"content", {{{"type", "output_text"}, {"text", want.content},
                                           {"annotations", json::array()}, {"logprobs", json::array()}}}}});
    }
    for (const parsed_tool_call& c : want.calls) {
      want_output.push_back({{"type", "function_call"}, {"name", c.name}, {"arguments", c.arguments}, {"status", "completed"}});
    }
    json got = whole.final_response["output"];
    for (json& i : got) i.erase("id");
    for (json& i : got) i.erase("call_id");
    EXPECT_EQ(got, want_output) << text;
    for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, text.size()}) {
      const std::string what = text + " piece " + std::to_string(piece);
      const streamed s = run(f, text, piece);
      check_events(s, what);
      EXPECT_EQ(without_ids(s.final_response["output"]), without_ids(whole.final_response["output"])) << what;
      EXPECT_EQ(s.events.back()["type"], "response.completed") << what;
      EXPECT_EQ(s.events.back()["response"], s.final_response) << what;
    }
  }
}

size_t count(const std::vector<json>& events, size_t end, const std::string& type) {
  size_t n = 0;
  for (size_t i = 0; i < end; ++i) n += events[i]["type"] == type;
  return n;
}

TEST(responses_tool_events, a_call_opens_with_its_name_and_its_arguments_stream_before_the_end) {
  const std::string generic = R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]})";
  const std::string hermes = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>";
  const std::string pythonic = "[get_weather(city=\"Paris\", unit='c')]";
  for (const auto& [f, text] : {std::pair{tool_format::generic, generic}, std::pair{tool_format::hermes, hermes},
                                std::pair{tool_format::pythonic, pythonic}}) {
    const streamed s = run(f, text, 4);
    EXPECT_EQ(count(s.events, s.fed_before_end, "response.output_item.added"), 1u) << text;
    EXPECT_GT(count(s.events, s.fed_before_end, "response.function_call_arguments.delta"), 1u)
        << "the arguments are sent as they are written: " << text;
    EXPECT_EQ(count(s.events, s.events.size(), "response.output_text.delta"), 0u) << text;
    // The item opens as soon as its name is whole: before the first byte of its arguments is fed.
    const streamed upto = run(f, text.substr(0, f == tool_format::pythonic ? text.find("city") : text.find("\"arguments\"")), 4,
                              finish_reason::length);
    EXPECT_EQ(count(upto.events, upto.events.size(), "response.output_item.added"), 1u) << text;
  }
}

TEST(responses_tool_events, text_before_a_call_is_a_message_that_closes_before_the_call_opens) {
  const std::string text = "Let me look.\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call>";
  const streamed s = run(tool_format::hermes, text, 5);
  std::vector<std::string> types;
  for (const json& e : s.events) {
    if (e["type"] != "response.output_text.delta" && e["type"] != "response.function_call_arguments.delta") {
      types.push_back(e["type"]);
    }
  }
  EXPECT_EQ(types, (std::vector<std::string>{
                       "response.created", "response.in_progress", "response.output_item.added",
                       "response.content_part.added", "response.output_text.done", "response.content_part.done",
                       "response.output_item.done", "response.output_item.added", "response.function_call_arguments.done",
                       "response.output_item.done", "response.completed"}));
  const json& output = s.final_response["output"];
  ASSERT_EQ(output.size(), 2u);
  EXPECT_EQ(output[0]["content"][0]["text"], "Let me look.");
  EXPECT_EQ(output[1]["arguments"], "{\"tz\":\"UTC\"}");
  // The text went out before the call was written.
  EXPECT_GT(count(s.events, s.fed_before_end, "response.output_text.delta"), 0u);
}

TEST(responses_tool_events, a_call_cut_by_max_output_tokens_closes_incomplete) {
  const std::string text = R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Par)";
  const streamed s = run(tool_format::generic, text, 5, finish_reason::length);
  check_events(s, text);
  EXPECT_EQ(s.events.back()["type"], "response.incomplete");
  const json& output = s.final_response["output"];
  ASSERT_EQ(output.size(), 1u) << "what was sent stays sent";
  EXPECT_EQ(output[0]["status"], "incomplete");
  EXPECT_EQ(output[0]["arguments"], R"({"city":"Par)");
  EXPECT_EQ(s.final_response["incomplete_details"]["reason"], "max_output_tokens");
}

}  // namespace
}  // namespace troupe
