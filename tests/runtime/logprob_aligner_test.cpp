// logprob_aligner: token logprobs leave with the text they produced; tokens a stop string cut away
// never leave; the token where a stop string begins mid-token stays (its text is partly returned).
#include <gtest/gtest.h>

#include "runtime/logprob_aligner.h"

namespace troupe {
namespace {

token_logprobs tok(int32_t id) { return token_logprobs{id, -0.5f, {}}; }

std::vector<int32_t> ids(const std::vector<token_logprobs>& v) {
  std::vector<int32_t> out;
  for (const auto& t : v) out.push_back(t.token);
  return out;
}

TEST(logprob_aligner, tokens_leave_with_their_text) {
  logprob_aligner a;
  a.add(tok(1), 0);  // "He"
  EXPECT_EQ(ids(a.release(2)), std::vector<int32_t>{1});
  a.add(tok(2), 2);  // "llo": held back by the stop checker (could start a stop string)
  EXPECT_TRUE(a.release(2).empty());
  a.add(tok(3), 5);  // " world" releases "llo world"
  EXPECT_EQ(ids(a.release(11)), (std::vector<int32_t>{2, 3}));
}

TEST(logprob_aligner, a_stop_string_drops_the_tokens_it_cut_away) {
  logprob_aligner a;
  a.add(tok(1), 0);  // "Hi"
  a.add(tok(2), 2);  // "\n"   -> the stop string "\n\n" starts here
  a.add(tok(3), 3);  // "\n"
  EXPECT_EQ(ids(a.release(2)), std::vector<int32_t>{1});
  EXPECT_TRUE(a.finish(2, true).empty());
}

TEST(logprob_aligner, a_stop_string_inside_a_token_keeps_that_token) {
  logprob_aligner a;
  a.add(tok(1), 0);  // "Hello"; stop "llo" returns "He": the token is partly returned
  a.add(tok(2), 5);
  EXPECT_EQ(ids(a.finish(2, true)), std::vector<int32_t>{1});
}

TEST(logprob_aligner, tokens_without_text_yet_go_with_the_text_that_completes_them) {
  logprob_aligner a;
  a.add(tok(1), 0);  // first byte of a 3-byte character: the decoder returns nothing yet
  a.add(tok(2), 0);  // completes it: 3 bytes
  EXPECT_EQ(ids(a.release(3)), (std::vector<int32_t>{1, 2}));
}

TEST(logprob_aligner, finishing_without_a_stop_string_releases_everything) {
  logprob_aligner a;
  a.add(tok(1), 0);
  a.add(tok(2), 4);  // held back when max_tokens ended the sequence; flushed with the text
  EXPECT_EQ(ids(a.finish(4, false)), (std::vector<int32_t>{1, 2}));
}

}  // namespace
}  // namespace troupe
