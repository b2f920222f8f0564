// json_writer against nlohmann's serializer (what dump_json writes): the same bytes for every
// string, including control characters, quotes, backslashes, multi-byte UTF-8 and every kind of
// broken UTF-8 (replaced by U+FFFD at the same places), and commas placed right in nested values.
#include "net/json_writer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "net/openai_response.h"

namespace troupe {
namespace {

using json = nlohmann::ordered_json;

std::string written(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

std::string reference(const std::string& s) { return dump_json(json(s)); }

TEST(json_writer, escapes_tricky_strings_as_nlohmann_does) {
  std::vector<std::string> cases = {
      "", "plain", "say \"hi\"", "back\\slash", "a/b", "tab\there", "line\nbreak\r\n", "\b\f", "del\x7f",
      "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xf0\x9f\x98\x80 emoji", "\xef\xbb\xbf" "bom",
      "\xe2\x80\xa8 line separator",  // left as is (nlohmann does not escape U+2028)
      std::string("nul\0inside", 10),
      "\x80",                   // a lone continuation byte
      "\xc0\x80",               // an overlong NUL
      "\xc3",                   // cut at the end
      "\xe6\x97",               // cut at the end, two of three bytes
      "\xe6\x97x",              // cut by an ASCII byte (read again as itself)
      "\xe6\x97\xe6\x97\xa5",   // cut by the start of a whole sequence
      "\xed\xa0\x80",           // a UTF-16 surrogate
      "\xf4\x90\x80\x80",       // above U+10FFFF
      "\xf5\x80", "\xff\xfe", "a\xf0\x9f\x98" "b", "\xf0\x9f\x98\xf0\x9f\x98\x80",
  };
  for (int c = 0; c < 0x20; ++c) cases.push_back(std::string(1, static_cast<char>(c)) + "x");
  for (const std::string& s : cases) EXPECT_EQ(written(s), reference(s)) << "input bytes: " << json(s).dump(-1, ' ', true, json::error_handler_t::replace);
}

TEST(json_writer, matches_nlohmann_on_random_bytes) {
  // Bytes drawn mostly from the interesting ranges: controls, quotes, continuation and lead bytes.
  std::mt19937 rng(1234);
  const std::string alphabet = std::string("\"\\\n\t\x01\x1f az", 10) + "\x7f\x80\xbf\xc2\xc3\xdf\xe0\xe6\xed\xef\xf0\xf4\xf5\xff\x97\xa5";
  for (int n = 0; n < 3000; ++n) {
    std::string s;
    const int len = static_cast<int>(rng() % 12);
    for (int k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
    ASSERT_EQ(written(s), reference(s)) << "case " << n;
  }
}

TEST(json_writer, places_commas_in_nested_values) {
  std::string out;
  json_writer w(out);
  w.begin_object();
  w.key("id").string("x\"y");
  w.key("n").integer(-42);
  w.key("big").integer(INT64_MAX);
  w.key("ok").boolean(true);
  w.key("no").boolean(false);
  w.key("nothing").null();
  w.key("list").begin_array().integer(1).begin_object().end_object().begin_array().end_array().null().end_array();
  w.key("obj").begin_object().key("a").string("").end_object();
  w.end_object();
  const json expected = {{"id", "x\"y"},   {"n", -42},     {"big", INT64_MAX},
                         {"ok", true},     {"no", false},  {"nothing", nullptr},
                         {"list", json::array({1, json::object(), json::array(), nullptr})},
                         {"obj", {{"a", ""}}}};
  EXPECT_EQ(out, dump_json(expected));
  EXPECT_EQ(json::parse(out), expected);
}

TEST(json_writer, appends_without_allocating_once_the_buffer_has_grown) {
  std::string out;
  out.reserve(256);
  const char* before = out.data();
  for (int round = 0; round < 100; ++round) {
    out.clear();
    json_writer(out).begin_object().key("content").string("tok\n\"en\"").end_object();
  }
  EXPECT_EQ(out.data(), before);  // cleared, never reallocated
  EXPECT_EQ(out, "{\"content\":\"tok\\n\\\"en\\\"\"}");
}

}  // namespace
}  // namespace troupe
