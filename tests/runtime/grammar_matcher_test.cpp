// The grammar matcher on hand-written grammars: accept/reject, tokens spanning terminals, UTF-8
// split across tokens, end of sequence, control tokens, SentencePiece's stripped first space, and
// masks equal to per-token acceptance along random walks.
#include <random>

#include "grammar_test_support.h"

namespace troupe {
namespace {

using namespace grammar_test;
using kind = constraint_spec::kind;

TEST(grammar_matcher, gbnf_accepts_and_rejects_whole_strings) {
  auto c = compile_or_die(kind::grammar, "root ::= \"a\" mid* \"c\"\nmid ::= \"b\" | [x-z]\n", tiny_vocab());
  EXPECT_TRUE(matches(*c, "ac"));
  EXPECT_TRUE(matches(*c, "abyzbc"));
  EXPECT_FALSE(matches(*c, "a"));       // incomplete
  EXPECT_FALSE(matches(*c, "abw"));     // w outside the class
  EXPECT_FALSE(matches(*c, "acc"));     // nothing after the end
}

TEST(grammar_matcher, a_token_spanning_several_terminals_is_allowed_and_advances_over_all_of_them) {
  auto v = tiny_vocab();
  auto c = compile_or_die(kind::json_schema,
                          R"({"type":"object","properties":{"a":{"type":"string"}},"required":["a"]})", v);
  auto m = c->start();
  token_mask mask;
  mask.resize(v->vocab_size);
  m->fill_mask(mask);
  EXPECT_TRUE(mask.test(tiny_token(*v, "{\"")));     // '{' then the key's quote
  EXPECT_FALSE(mask.test(tiny_token(*v, "\"}")));
  ASSERT_TRUE(m->accept(tiny_token(*v, "{\"")));
  ASSERT_TRUE(m->accept(tiny_token(*v, "a")));
  m->fill_mask(mask);
  EXPECT_TRUE(mask.test(tiny_token(*v, "\": \"")));  // key end, colon, space, value quote
  ASSERT_TRUE(m->accept(tiny_token(*v, "\": \"")));
  EXPECT_FALSE(m->accept(tiny_token(*v, "\xA9x")));   // a lone continuation byte is not UTF-8
  ASSERT_TRUE(m->accept(tiny_token(*v, "\"}")));      // closes the string and the object
  EXPECT_TRUE(m->is_terminated());
}

TEST(grammar_matcher, utf8_split_across_tokens_is_matched_byte_by_byte) {
  auto v = tiny_vocab();
  auto c = compile_or_die(kind::regex, "é+x?", v);
  auto m = c->start();
  const int32_t lead = 0xC3, cont = 0xA9;
  EXPECT_FALSE(m->clone()->accept(cont));   // a continuation byte cannot start
  ASSERT_TRUE(m->accept(lead));
  token_mask mask;
  mask.resize(v->vocab_size);
  m->fill_mask(mask);
  EXPECT_TRUE(mask.test(cont));
  EXPECT_TRUE(mask.test(tiny_token(*v, "\xA9x")));  // the rest of é, then x
  EXPECT_FALSE(mask.test(v->eos_ids[0]));          // half a character is not a match
  EXPECT_FALSE(mask.test(lead));
  ASSERT_TRUE(m->accept(cont));
  m->fill_mask(mask);
  EXPECT_TRUE(mask.test(v->eos_ids[0]));
  EXPECT_TRUE(mask.test(tiny_token(*v, "\xC3\xA9")));
  EXPECT_FALSE(m->is_terminated());  // more é or an x may follow
  ASSERT_TRUE(m->accept(tiny_token(*v, "x")));
  EXPECT_TRUE(m->is_terminated());
}

TEST(grammar_matcher, eos_is_allowed_exactly_when_the_match_is_complete) {
  auto v = tiny_vocab();
  auto c = compile_or_die(kind::choice, R"(["ab", "abc"])", v);
  auto m = c->start();
  const int32_t eos = v->eos_ids[0];
  EXPECT_FALSE(m->clone()->accept(eos));
  ASSERT_TRUE(m->accept(tiny_token(*v, "ab")));
  token_mask mask;
  mask.resize(v->vocab_size);
  m->fill_mask(mask);
  EXPECT_TRUE(mask.test(eos));
  EXPECT_TRUE(mask.test('c'));
  EXPECT_FALSE(m->is_terminated());
  ASSERT_TRUE(m->accept(eos));
  EXPECT_TRUE(m->is_terminated());
  EXPECT_FALSE(m->accept('c'));
}

TEST(grammar_matcher, control_tokens_are_never_allowed) {
  const tokenizer& tok = smollm2();
  auto c = compile_constraint(constraint_spec{kind::regex, "(.|\\n)*"}, tok);
  ASSERT_TRUE(c.ok()) << c.err().to_string();
  auto m = (*c)->start();
  token_mask mask;
  mask.resize(tok.vocab_size());
  m->fill_mask(mask);
  int special = 0;
  for (int32_t t = 0; t < tok.vocab_size(); ++t) {
    if (!tok.is_special(t) || tok.is_eos(t)) continue;
    ++special;
    EXPECT_FALSE(mask.test(t)) << tok.token_text(t);
    EXPECT_FALSE(m->clone()->accept(t));
  }
  EXPECT_GT(special, 0);
  EXPECT_TRUE(mask.test(tok.token_id("hello")));
}

TEST(grammar_matcher, sentencepiece_first_token_is_matched_without_its_leading_space) {
  auto v = tiny_vocab(/*strips_leading_space=*/true);
  auto c = compile_or_die(kind::choice, R"(["a b"])", v);
  auto m = c->start();
  token_mask mask;
  mask.resize(v->vocab_size);
  m->fill_mask(mask);
  EXPECT_TRUE(mask.test(tiny_token(*v, " a")));  // decodes as "a"
  EXPECT_TRUE(mask.test('a'));
  EXPECT_TRUE(mask.test(' '));                   // decodes as "": harmless, the next space counts
  EXPECT_FALSE(mask.test(tiny_token(*v, " \"")));  // decodes as "\"", not in the choice
  ASSERT_TRUE(m->accept(tiny_token(*v, " a")));
  m->fill_mask(mask);
  EXPECT_TRUE(mask.test(' '));                   // later spaces are kept
  EXPECT_FALSE(mask.test(tiny_token(*v, " a")));
}

TEST(grammar_matcher, grammar_errors_name_the_offset_or_rule) {
  auto v = tiny_vocab();
  auto err = [&](kind k, const std::string& text) {
    auto c = compile_constraint_for_vocab(constraint_spec{k, text}, v);
    EXPECT_FALSE(c.ok()) << text;
    return c.ok() ? std::string() : c.err().message;
  };
  EXPECT_NE(err(kind::grammar, "root ::= x\nx ::= x \"a\" | \"b\"\n").find("left recursion"), std::string::npos);
  EXPECT_NE(err(kind::grammar, "root ::= y\n").find("\"y\" is used but not defined"), std::string::npos);
  EXPECT_NE(err(kind::grammar, "start ::= \"a\"\n").find("no \"root\""), std::string::npos);
  EXPECT_NE(err(kind::grammar, "root ::= \"a\n").find("offset 11: unterminated literal"), std::string::npos);
  EXPECT_NE(err(kind::regex, "a(b").find("offset 3"), std::string::npos);
  EXPECT_NE(err(kind::regex, "(a)\\1").find("unsupported escape"), std::string::npos);
  EXPECT_NE(err(kind::regex, "a{2000}").find("repetition count"), std::string::npos);
  EXPECT_NE(err(kind::choice, "[]").find("non-empty"), std::string::npos);
  EXPECT_NE(err(kind::choice, "[1]").find("choice[0]"), std::string::npos);
}

TEST(grammar_matcher, regex_subset_matches_like_a_regex_engine) {
  auto v = tiny_vocab();
  auto c = compile_or_die(kind::regex, R"(^(?:[a-c]+|\d{2,3})-[^x\s]?\.(yes|no)$)", v);
  EXPECT_TRUE(matches(*c, "abc-q.yes"));
  EXPECT_TRUE(matches(*c, "12-.no"));
  EXPECT_TRUE(matches(*c, "123-é.no"));
  EXPECT_FALSE(matches(*c, "1-q.no"));     // \d{2,3}
  EXPECT_FALSE(matches(*c, "abc-x.no"));   // [^x\s]
  EXPECT_FALSE(matches(*c, "abc- .no"));
  EXPECT_FALSE(matches(*c, "abc-qq.no"));
  EXPECT_FALSE(matches(*c, "abc-q.nope"));
}

TEST(grammar_matcher, gbnf_features_repetition_classes_escapes_and_comments) {
  auto v = tiny_vocab();
  const std::string g = R"(# a list of one to three items
root   ::= "[" item ("," item){0,2} "]"   # trailing comment
item   ::= [0-9]+ | "\"" [^"\\\n]* "\"" | bool
bool   ::= ("true" |
            "false")
)";
  auto c = compile_or_die(kind::grammar, g, v);
  EXPECT_TRUE(matches(*c, "[1]"));
  EXPECT_TRUE(matches(*c, "[1,\"a é\",true]"));
  EXPECT_FALSE(matches(*c, "[1,2,3,4]"));
  EXPECT_FALSE(matches(*c, "[]"));
  EXPECT_FALSE(matches(*c, "[\"a\nb\"]"));
}

// Random walks over allowed tokens; at every step the mask must equal per-token acceptance.
void random_walk_checks(kind k, const std::string& text, uint32_t seed) {
  auto v = tiny_vocab();
  auto c = compile_or_die(k, text, v);
  ASSERT_TRUE(c);
  std::vector<int32_t> all(static_cast<size_t>(v->vocab_size));
  for (int32_t t = 0; t < v->vocab_size; ++t) all[t] = t;
  std::mt19937 rng(seed);
  for (int walk = 0; walk < 4; ++walk) {
    auto m = c->start();
    for (int step = 0; step < 40 && !m->is_terminated(); ++step) {
      expect_mask_exact(*m, v->vocab_size, all);
      token_mask mask;
      mask.resize(v->vocab_size);
      m->fill_mask(mask);
      std::vector<int32_t> allowed;
      for (int32_t t = 0; t < v->vocab_size; ++t) {
        if (mask.test(t)) allowed.push_back(t);
      }
      ASSERT_FALSE(allowed.empty()) << "dead end at step " << step;
      ASSERT_TRUE(m->accept(allowed[rng() % allowed.size()]));
    }
  }
}

TEST(grammar_matcher, masks_equal_per_token_acceptance_along_random_walks) {
  random_walk_checks(kind::json_object, "", 1);
  random_walk_checks(kind::json_schema,
                     R"({"type":"object","properties":{"a":{"type":"string","maxLength":3},
                        "n":{"type":"integer","minimum":-5,"maximum":120},"b":{"type":"boolean"}},
                        "required":["a"]})",
                     2);
  random_walk_checks(kind::regex, "(ab|a\"c)*(12|3\\.)?é", 3);
  random_walk_checks(kind::grammar, "root ::= (\"a\" root \"b\")? | \"{\" [a-z\"]* \"}\"\n", 4);
}

TEST(grammar_matcher, clones_advance_independently) {
  auto v = tiny_vocab();
  auto c = compile_or_die(kind::choice, R"(["yes", "no"])", v);
  auto a = c->start();
  auto b = a->clone();
  ASSERT_TRUE(a->accept(tiny_token(*v, "yes")));
  EXPECT_TRUE(a->is_terminated());
  EXPECT_FALSE(b->is_terminated());
  EXPECT_FALSE(b->clone()->accept('s'));
  ASSERT_TRUE(b->accept(tiny_token(*v, "no")));
  EXPECT_TRUE(b->is_terminated());
}

}  // namespace
}  // namespace troupe
