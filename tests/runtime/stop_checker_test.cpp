// stop_checker: stop strings split across pieces, held-back prefixes released when disambiguated,
// overlapping stop strings, multibyte UTF-8, split-independence; check_token_finish's rules.
#include "runtime/stop_checker.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace troupe {
namespace {

struct run_result {
  std::string text;
  bool stopped = false;
  int32_t stop_index = -1;
};

// Feeds the pieces in order and flushes at the end if no stop matched.
run_result run(std::vector<std::string> stops, const std::vector<std::string>& pieces) {
  stop_checker c(std::move(stops));
  run_result r;
  for (const auto& p : pieces) {
    auto out = c.feed(p);
    r.text += out.text;
    if (out.stopped) {
      r.stopped = true;
      r.stop_index = out.stop_index;
      return r;
    }
  }
  r.text += c.flush();
  return r;
}

TEST(stop_checker, without_stops_emits_everything_at_once) {
  stop_checker c({});
  EXPECT_EQ(c.feed("Hello").text, "Hello");
  EXPECT_EQ(c.feed(" world").text, " world");
  EXPECT_EQ(c.flush(), "");
}

TEST(stop_checker, cuts_a_stop_string_and_what_follows) {
  auto r = run({"###"}, {"The answer", " is 4.### And", " more"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 0);
  EXPECT_EQ(r.text, "The answer is 4.");
}

TEST(stop_checker, matches_a_stop_string_split_across_pieces) {
  stop_checker c({"</s>"});
  // "<" might start the stop string: held back.
  auto a = c.feed("Hi <");
  EXPECT_EQ(a.text, "Hi ");
  EXPECT_EQ(c.num_held(), 1u);
  auto b = c.feed("/");
  EXPECT_EQ(b.text, "");
  auto d = c.feed("s>tail");
  // The stop string completes: nothing more is emitted, ever.
  EXPECT_TRUE(d.stopped);
  EXPECT_EQ(d.text, "");
  EXPECT_TRUE(c.stopped());
  EXPECT_EQ(c.feed("x").text, "");
  EXPECT_EQ(c.flush(), "");
}

TEST(stop_checker, releases_held_text_once_disambiguated) {
  stop_checker c({"STOP"});
  EXPECT_EQ(c.feed("ST").text, "");
  // "STa" cannot start "STOP" anymore; everything is emitted.
  auto out = c.feed("a");
  EXPECT_FALSE(out.stopped);
  EXPECT_EQ(out.text, "STa");
  // At the end the held prefix is flushed as ordinary text.
  EXPECT_EQ(c.feed("x STO").text, "x ");
  EXPECT_EQ(c.flush(), "STO");
}

TEST(stop_checker, holds_the_longest_possible_prefix_with_overlaps) {
  // "aab" could be the start of "aaba" after "a" is dropped: KMP-style overlap.
  stop_checker c({"aaba"});
  EXPECT_EQ(c.feed("aaab").text, "a");
  auto out = c.feed("a!");
  EXPECT_TRUE(out.stopped);
  EXPECT_EQ(out.text, "");
}

TEST(stop_checker, first_completed_stop_string_wins) {
  // "bc" completes (at 'c') before "abcd" could: the earliest end wins, as a char-by-char stream.
  EXPECT_EQ(run({"abcd", "bc"}, {"xabcd"}).text, "xa");
  EXPECT_EQ(run({"abcd", "bc"}, {"xab", "cd"}).text, "xa");
  // Same end: the earliest start (the longer string) wins and cuts more.
  auto r = run({"bc", "abc"}, {"xabc"});
  EXPECT_EQ(r.text, "x");
  EXPECT_EQ(r.stop_index, 1);
  // Several stop strings, only one occurs.
  auto s = run({"\n\n", "User:"}, {"Sure.", " User", ": hi"});
  EXPECT_EQ(s.text, "Sure. ");
  EXPECT_EQ(s.stop_index, 1);
}

TEST(stop_checker, result_does_not_depend_on_the_split) {
  const std::string text = "Bonjour ça va? ok<|im_end|> après";
  const std::vector<std::string> stops{"<|im_end|>", "va?!", "çb"};
  const auto whole = run(stops, {text});
  EXPECT_EQ(whole.text, "Bonjour ça va? ok");
  std::mt19937 rng(4);
  for (int trial = 0; trial < 200; ++trial) {
    // Random byte splits (even inside multibyte characters).
    std::vector<std::string> pieces;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t len = 1 + rng() % 5;
      pieces.push_back(text.substr(pos, len));
      pos += len;
    }
    auto r = run(stops, pieces);
    ASSERT_EQ(r.text, whole.text) << "trial " << trial;
    ASSERT_EQ(r.stop_index, whole.stop_index);
  }
}

TEST(stop_checker, handles_multibyte_stop_strings) {
  // "。" is E3 80 82; "終" is E7 B5 82. Pieces split inside characters.
  auto r = run({"。終"}, {"日本語", "\xE3\x80", "\x82", "\xE7", "\xB5\x82", "!"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "日本語");
  // A near miss sharing the first character is released intact.
  auto m = run({"。終"}, {"日本語。", "です"});
  EXPECT_FALSE(m.stopped);
  EXPECT_EQ(m.text, "日本語。です");
}

TEST(stop_checker, never_emits_half_a_character) {
  stop_checker c({});
  // "é" = C3 A9 split over two pieces: the lead byte waits for its continuation.
  EXPECT_EQ(c.feed("caf\xC3").text, "caf");
  EXPECT_EQ(c.feed("\xA9!").text, "\xC3\xA9!");
  // A dangling lead byte at the end becomes U+FFFD.
  EXPECT_EQ(c.feed("\xF0\x9F").text, "");
  EXPECT_EQ(c.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(incomplete_utf8_tail("ab\xE2\x82"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("ab\xE2\x82\xAC"), 0u);
}

TEST(stop_checker, skips_matching_while_stops_are_not_allowed) {
  stop_checker c({"END"});
  // Before min_tokens the stop string is ordinary text.
  EXPECT_EQ(c.feed("END", false).text, "END");
  auto out = c.feed(" then END", true);
  EXPECT_TRUE(out.stopped);
  EXPECT_EQ(out.text, " then ");
}

TEST(stop_checker, finish_by_eos_unless_ignored_or_too_early) {
  sampling_params p;
  p.max_tokens = 10;
  p.min_tokens = 2;
  token_stop_rules rules{{2, 7}, 0};
  // EOS as the first token is ignored below min_tokens.
  EXPECT_EQ(check_token_finish(p, rules, 2, 1, 5), token_finish::none);
  // Any of the EOS ids stops once min_tokens tokens exist.
  EXPECT_EQ(check_token_finish(p, rules, 7, 2, 6), token_finish::eos);
  p.ignore_eos = true;
  EXPECT_EQ(check_token_finish(p, rules, 7, 2, 6), token_finish::none);
}

TEST(stop_checker, finish_by_stop_token_and_lengths) {
  sampling_params p;
  p.max_tokens = 3;
  p.stop_token_ids = {9};
  token_stop_rules rules{{2}, 8};
  EXPECT_EQ(check_token_finish(p, rules, 9, 1, 5), token_finish::stop_token);
  // max_tokens reached with an ordinary token: length.
  EXPECT_EQ(check_token_finish(p, rules, 4, 3, 7), token_finish::max_tokens);
  EXPECT_TRUE(is_length_finish(token_finish::max_tokens));
  // A stop on the last allowed token is still a stop.
  EXPECT_EQ(check_token_finish(p, rules, 2, 3, 7), token_finish::eos);
  // The context limit (prompt + generated) ends the sequence.
  EXPECT_EQ(check_token_finish(p, rules, 4, 2, 8), token_finish::session_len);
  EXPECT_TRUE(is_length_finish(token_finish::session_len));
  EXPECT_FALSE(is_length_finish(token_finish::eos));
}

}  // namespace
}  // namespace troupe
