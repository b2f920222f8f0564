// reasoning_parser: <think>...</think> spans split from content whole and when streamed in pieces,
// with tags split across pieces at every byte.
#include "runtime/reasoning_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace troupe {
namespace {

reasoning_split stream(const std::vector<std::string>& pieces, bool start_in_reasoning = false) {
  reasoning_parser p(start_in_reasoning);
  reasoning_split all;
  for (const auto& piece : pieces) {
    reasoning_split s = p.feed(piece);
    all.reasoning += s.reasoning;
    all.content += s.content;
  }
  reasoning_split tail = p.finish();
  all.reasoning += tail.reasoning;
  all.content += tail.content;
  return all;
}

const std::string k_answer = "<think>\nThe user adds 2 and 2.\n</think>\n\nIt's 4.";

TEST(reasoning_parser, splits_a_think_span_from_the_content) {
  auto s = reasoning_parser::split(k_answer);
  EXPECT_EQ(s.reasoning, "\nThe user adds 2 and 2.\n");
  EXPECT_EQ(s.content, "\n\nIt's 4.");
}

TEST(reasoning_parser, text_without_tags_is_all_content) {
  auto s = reasoning_parser::split("Just an answer, < not a tag, <thinking> neither.");
  EXPECT_EQ(s.reasoning, "");
  EXPECT_EQ(s.content, "Just an answer, < not a tag, <thinking> neither.");
  // What enable_thinking=false leaves the model to say: the empty span is in the prompt.
  EXPECT_EQ(reasoning_parser::split("It's 4.").content, "It's 4.");
}

TEST(reasoning_parser, every_two_and_three_way_cut_streams_like_the_whole) {
  const auto whole = reasoning_parser::split(k_answer);
  for (size_t i = 0; i <= k_answer.size(); ++i) {
    auto two = stream({k_answer.substr(0, i), k_answer.substr(i)});
    ASSERT_EQ(two.reasoning, whole.reasoning) << "cut at " << i;
    ASSERT_EQ(two.content, whole.content) << "cut at " << i;
    for (size_t j = i; j <= k_answer.size(); j += 3) {
      auto three = stream({k_answer.substr(0, i), k_answer.substr(i, j - i), k_answer.substr(j)});
      ASSERT_EQ(three.reasoning, whole.reasoning) << "cuts at " << i << ", " << j;
      ASSERT_EQ(three.content, whole.content) << "cuts at " << i << ", " << j;
    }
  }
}

TEST(reasoning_parser, byte_by_byte_pieces_release_text_as_soon_as_it_cannot_be_a_tag) {
  reasoning_parser p;
  std::string reasoning, content;
  std::vector<std::string> reasoning_after;  // reasoning released after each byte
  for (char ch : k_answer) {
    auto s = p.feed(std::string(1, ch));
    reasoning += s.reasoning;
    content += s.content;
    reasoning_after.push_back(reasoning);
  }
  // "<think>\nT": the T is released with the byte that brings it, not at the end.
  EXPECT_EQ(reasoning_after[8], "\nT");
  // "</thin" inside the span is held back, then dropped once the tag completes.
  const size_t close = k_answer.find("</think>");
  EXPECT_EQ(reasoning_after[close + 5], "\nThe user adds 2 and 2.\n");
  EXPECT_TRUE(p.finish().content.empty());
  EXPECT_EQ(content, "\n\nIt's 4.");
}

TEST(reasoning_parser, a_held_back_prefix_that_is_no_tag_is_released) {
  auto s = stream({"a <thi", "s is fine"});
  EXPECT_EQ(s.content, "a <this is fine");
  EXPECT_EQ(s.reasoning, "");
  auto tail = stream({"answer <thi"});  // the end releases an unfinished tag as text
  EXPECT_EQ(tail.content, "answer <thi");
}

TEST(reasoning_parser, an_unterminated_span_stays_reasoning) {
  auto s = stream({"<think>still thinking when max_tokens hit </thi"});
  EXPECT_EQ(s.reasoning, "still thinking when max_tokens hit </thi");
  EXPECT_EQ(s.content, "");
}

TEST(reasoning_parser, a_prompt_that_opened_the_span_starts_in_reasoning) {
  auto s = stream({"plan it", "</think>", "done <think>not again</think>"}, true);
  EXPECT_EQ(s.reasoning, "plan it");
  EXPECT_EQ(s.content, "done <think>not again</think>");  // one span only
}

}  // namespace
}  // namespace troupe
