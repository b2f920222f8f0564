// JSON Schema, json_object and choice constraints, feature by feature, through whole-string
// matching; and the errors that name the JSON path and keyword.
#include "grammar_test_support.h"

namespace troupe {
namespace {

using namespace grammar_test;
using kind = constraint_spec::kind;

std::shared_ptr<const compiled_constraint> schema(const std::string& s) {
  return compile_or_die(kind::json_schema, s, tiny_vocab());
}

std::string schema_error(const std::string& s) {
  auto c = compile_constraint_for_vocab(constraint_spec{kind::json_schema, s}, tiny_vocab());
  EXPECT_FALSE(c.ok()) << s;
  if (!c.ok()) EXPECT_EQ(c.err().code, errc::invalid_argument);
  return c.ok() ? std::string() : c.err().message;
}

TEST(grammar_json_schema, objects_keep_property_order_and_require_required) {
  auto c = schema(R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
                      "ok":{"type":"boolean"}},"required":["name","ok"],"additionalProperties":false})");
  EXPECT_TRUE(matches(*c, R"({"name":"x","age":3,"ok":true})"));
  EXPECT_TRUE(matches(*c, R"({"name":"x","ok":false})"));       // optional age omitted
  EXPECT_FALSE(matches(*c, R"({"name":"x","age":3})"));         // ok is required
  EXPECT_FALSE(matches(*c, R"({"ok":true,"name":"x"})"));       // schema order
  EXPECT_FALSE(matches(*c, R"({"name":"x","ok":true,"z":1})"));  // no other keys
  EXPECT_FALSE(matches(*c, R"({"name":"x","age":"3","ok":true})"));
}

TEST(grammar_json_schema, whitespace_is_at_most_one_space_at_structural_points) {
  auto c = schema(R"({"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}}},"required":["a"]})");
  EXPECT_TRUE(matches(*c, R"({"a":[1,2]})"));
  EXPECT_TRUE(matches(*c, R"({ "a": [ 1, 2 ] })"));
  EXPECT_FALSE(matches(*c, R"({"a":  [1]})"));
  EXPECT_FALSE(matches(*c, "{\"a\":\n[1]}"));
  EXPECT_FALSE(matches(*c, R"( {"a":[1]})"));
  EXPECT_FALSE(matches(*c, R"({"a" :[1]})"));
}

TEST(grammar_json_schema, additional_properties_schema_allows_other_keys_but_not_listed_names) {
  auto c = schema(R"({"type":"object","properties":{"id":{"type":"integer"}},"additionalProperties":{"type":"string"}})");
  EXPECT_TRUE(matches(*c, R"({"id":1,"x":"y","idx":"z"})"));
  EXPECT_TRUE(matches(*c, R"({"i":"y"})"));
  EXPECT_TRUE(matches(*c, R"({})"));
  EXPECT_FALSE(matches(*c, R"({"id":1,"id":"y"})"));  // a listed name again
  EXPECT_FALSE(matches(*c, R"({"x":1})"));             // other values are strings

  // Non-ASCII names and names that need escapes: an extra key still never repeats one.
  auto u = schema(R"({"type":"object","properties":{"名前":{"type":"integer"},"é\"q":{"type":"integer"}},
                      "additionalProperties":{"type":"string"}})");
  EXPECT_TRUE(matches(*u, R"({"名前":1,"名":"y","名前x":"z","é":"w","é\"":"v","ü":"t"})"));
  EXPECT_FALSE(matches(*u, R"({"名前":1,"名前":"y"})"));
  EXPECT_FALSE(matches(*u, R"({"é\"q":"y"})"));
  EXPECT_FALSE(matches(*u, R"({"é\"q":1,"é\"q":"y"})"));
}

TEST(grammar_json_schema, a_bare_object_type_means_any_object) {
  auto c = schema(R"({"type":"object"})");
  EXPECT_TRUE(matches(*c, R"({})"));
  EXPECT_TRUE(matches(*c, R"({"a":[1,{"b":null}]})"));
  EXPECT_FALSE(matches(*c, R"([])"));
}

TEST(grammar_json_schema, enum_const_and_nested_objects) {
  auto c = schema(R"({"type":"object","properties":{"kind":{"enum":["a","b c",3,null]},
                      "v":{"const":{"x":[1,"é"]}},"in":{"type":"object","properties":{"d":{"type":"null"}},
                      "required":["d"]}},"required":["kind","v","in"]})");
  EXPECT_TRUE(matches(*c, R"({"kind":"b c","v":{"x":[1,"é"]},"in":{"d":null}})"));
  EXPECT_TRUE(matches(*c, R"({"kind":3,"v":{"x":[1,"é"]},"in":{"d":null}})"));
  EXPECT_FALSE(matches(*c, R"({"kind":"c","v":{"x":[1,"é"]},"in":{"d":null}})"));
  EXPECT_FALSE(matches(*c, R"({"kind":null,"v":{"x":[1]},"in":{"d":null}})"));
}

TEST(grammar_json_schema, arrays_respect_min_and_max_items) {
  auto c = schema(R"({"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":3})");
  EXPECT_FALSE(matches(*c, "[]"));
  EXPECT_TRUE(matches(*c, "[true]"));
  EXPECT_TRUE(matches(*c, "[true,false,true]"));
  EXPECT_FALSE(matches(*c, "[true,false,true,true]"));
  EXPECT_TRUE(matches(*schema(R"({"type":"array","maxItems":0})"), "[]"));
  EXPECT_FALSE(matches(*schema(R"({"type":"array","maxItems":0})"), "[1]"));
}

TEST(grammar_json_schema, any_of_one_of_type_lists_and_refs) {
  auto c = schema(R"({"$defs":{"pt":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"]}},
                      "type":"object","properties":{"p":{"$ref":"#/$defs/pt"},
                      "q":{"anyOf":[{"$ref":"#/$defs/pt"},{"type":"null"}]},"r":{"type":["string","integer"]},
                      "s":{"oneOf":[{"type":"boolean"},{"type":"array","items":{"$ref":"#/$defs/pt"}}]}},
                      "required":["p","q","r","s"]})");
  EXPECT_TRUE(matches(*c, R"({"p":{"x":1.5},"q":null,"r":"a","s":true})"));
  EXPECT_TRUE(matches(*c, R"({"p":{"x":-2e10},"q":{"x":0},"r":7,"s":[{"x":1}]})"));
  EXPECT_FALSE(matches(*c, R"({"p":{"x":1},"q":null,"r":true,"s":true})"));
  EXPECT_FALSE(matches(*c, R"({"p":{"y":1},"q":null,"r":1,"s":true})"));
}

TEST(grammar_json_schema, recursive_refs_are_bounded_and_refused_without_a_base_case) {
  auto c = schema(R"({"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array",
                      "items":{"$ref":"#"}}},"required":["v"]})");
  EXPECT_TRUE(matches(*c, R"({"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]})"));
  std::string deep = R"({"v":0})";
  for (int i = 0; i < 12; ++i) deep = R"({"v":0,"kids":[)" + deep + "]}";
  EXPECT_FALSE(matches(*c, deep));  // deeper than the recursion bound
  const std::string msg = schema_error(R"({"type":"object","properties":{"next":{"$ref":"#"}},"required":["next"]})");
  EXPECT_NE(msg.find("$.properties.next.$ref"), std::string::npos) << msg;
  EXPECT_NE(msg.find("recursive"), std::string::npos) << msg;
}

TEST(grammar_json_schema, string_lengths_formats_and_patterns) {
  auto len = schema(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_FALSE(matches(*len, R"("a")"));
  EXPECT_TRUE(matches(*len, R"("ab")"));
  EXPECT_TRUE(matches(*len, R"("é\n\"")"));  // three characters, escapes count as one
  EXPECT_FALSE(matches(*len, R"("abcd")"));
  EXPECT_TRUE(matches(*schema(R"({"type":"string","format":"date"})"), R"("2024-02-29")"));
  EXPECT_FALSE(matches(*schema(R"({"type":"string","format":"date"})"), R"("2024-13-01")"));
  EXPECT_TRUE(matches(*schema(R"({"format":"date-time"})"), R"("2024-02-29T23:59:01.5+02:00")"));
  EXPECT_TRUE(matches(*schema(R"({"format":"uuid"})"), R"("123e4567-e89b-12d3-a456-426614174000")"));
  EXPECT_FALSE(matches(*schema(R"({"format":"uuid"})"), R"("123e4567")"));
  EXPECT_TRUE(matches(*schema(R"({"format":"email"})"), R"("a.b@example.com")"));
  EXPECT_FALSE(matches(*schema(R"({"format":"email"})"), R"("a.b.example.com")"));
  auto anchored = schema(R"({"type":"string","pattern":"^[A-Z]{2}-\\d+$"})");
  EXPECT_TRUE(matches(*anchored, R"("AB-12")"));
  EXPECT_FALSE(matches(*anchored, R"("xAB-12")"));
  auto loose = schema(R"({"type":"string","pattern":"a\"b"})");  // unanchored; the quote is escaped
  EXPECT_TRUE(matches(*loose, R"("xxa\"byy")"));
  EXPECT_FALSE(matches(*loose, R"("ab")"));
}

TEST(grammar_json_schema, integer_and_number_bounds) {
  auto i = schema(R"({"type":"integer","minimum":-12,"exclusiveMaximum":250})");
  for (const char* ok : {"-12", "-1", "0", "9", "10", "99", "100", "249"}) EXPECT_TRUE(matches(*i, ok)) << ok;
  for (const char* bad : {"-13", "250", "1000", "007", "-0", "1.5"}) EXPECT_FALSE(matches(*i, bad)) << bad;
  auto n = schema(R"({"type":"number","minimum":-1,"maximum":2})");
  for (const char* ok : {"-1", "-0.5", "0", "1.999", "2", "2.0"}) EXPECT_TRUE(matches(*n, ok)) << ok;
  for (const char* bad : {"-1.5", "2.5", "3", "1e3"}) EXPECT_FALSE(matches(*n, bad)) << bad;
  EXPECT_TRUE(matches(*schema(R"({"type":"number"})"), "-0.25E+12"));
  auto rounded = schema(R"({"type":"number","exclusiveMinimum":0,"maximum":2.5})");  // rounded inward: [1, 2]
  for (const char* ok : {"1", "1.25", "2"}) EXPECT_TRUE(matches(*rounded, ok)) << ok;
  for (const char* bad : {"0", "0.5", "2.25", "-1"}) EXPECT_FALSE(matches(*rounded, bad)) << bad;
  EXPECT_NE(schema_error(R"({"type":"number","minimum":0.2,"maximum":0.8})").find("rounded inward"), std::string::npos);
  EXPECT_FALSE(matches(*schema(R"({"type":"integer"})"), "12345678901234567"));  // 17 digits
}

TEST(grammar_json_schema, json_object_accepts_any_object_and_only_objects) {
  auto c = compile_or_die(kind::json_object, "", tiny_vocab());
  EXPECT_TRUE(matches(*c, R"({})"));
  EXPECT_TRUE(matches(*c, R"({"a": [1, {"b": null}, "\u00e9"], "c": -0.5e3})"));
  EXPECT_FALSE(matches(*c, R"([1])"));
  EXPECT_FALSE(matches(*c, R"("x")"));
  EXPECT_FALSE(matches(*c, R"({"a":"\ud800"})"));  // a lone surrogate escape is not valid JSON
  EXPECT_FALSE(matches(*c, R"({"a":01})"));
}

TEST(grammar_json_schema, errors_name_the_json_path_and_keyword) {
  EXPECT_EQ(schema_error(R"({"type":"object","properties":{"age":{"type":"integer","patternProperties":{}}}})"),
            "$.properties.age: unsupported keyword \"patternProperties\"");
  EXPECT_EQ(schema_error(R"({"type":"strin"})"), "$.type: unknown type \"strin\"");
  EXPECT_EQ(schema_error(R"({"$ref":"#/$defs/nope"})"), "$.$ref: \"$ref\" target not found: \"#/$defs/nope\"");
  EXPECT_EQ(schema_error(R"({"type":"string","format":"hostname"})"), "$.format: unsupported format \"hostname\"");
  EXPECT_EQ(schema_error(R"({"type":"array","minItems":3,"maxItems":2})"), "$.maxItems: \"maxItems\" is below \"minItems\"");
  EXPECT_EQ(schema_error(R"({"type":"string","pattern":"(a"})"), "$.pattern: regex: offset 2: missing ')'");
  EXPECT_EQ(schema_error("{"), "$: the schema is not valid JSON");
  EXPECT_EQ(schema_error(R"({"anyOf":[{"type":"null"}],"type":"object"})"),
            "$: unsupported keyword \"type\" alongside \"anyOf\"");
  EXPECT_NE(schema_error(std::string(300, '[') + std::string(300, ']')).find("nested too deeply"), std::string::npos);
}

TEST(grammar_json_schema, non_strict_ignores_what_it_cannot_enforce) {
  const std::string text = R"js({"type":"object","properties":{"u":{"type":"string","format":"uri"},
                               "n":{"type":"integer","multipleOf":5},"p":{"type":"string","pattern":"(?=x)"}},
                               "required":["u","n","p"],"uniqueItems":true})js";
  auto strict = compile_constraint_for_vocab(constraint_spec{kind::json_schema, text}, tiny_vocab());
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.err().message, "$: unsupported keyword \"uniqueItems\"");
  auto lenient = compile_constraint_for_vocab(constraint_spec{kind::json_schema, text, false}, tiny_vocab());
  ASSERT_TRUE(lenient.ok()) << lenient.err().to_string();
  EXPECT_TRUE(matches(**lenient, R"({"u":"any text","n":3,"p":"y"})"));
  EXPECT_FALSE(matches(**lenient, R"({"u":1,"n":3,"p":"y"})"));  // what is supported still holds
}

TEST(grammar_json_schema, annotations_are_ignored) {
  auto c = schema(R"({"title":"T","description":"d","$schema":"x","type":"object","properties":{"a":
                      {"type":"integer","default":1,"examples":[1]}},"required":["a"]})");
  EXPECT_TRUE(matches(*c, R"({"a":1})"));
}

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

using namespace grammar_test;

// The tool-call grammar under required/named choices: a model's native wrapper around values of
// the schema, up to `max` of them joined by the separator.
TEST(grammar_json_schema, tagged_schema_frames_instances_in_the_native_wrapper) {
  const std::string call = R"({"type":"object","properties":{"name":{"const":"f"},"arguments":{"type":"object",
      "properties":{"x":{"type":"integer"}},"required":["x"],"additionalProperties":false}},
      "required":["name","arguments"],"additionalProperties":false})";
  auto hermes = compile_or_die(constraint_spec::kind::json_schema,
                               R"({"x-troupe-tagged":{"prefix":"<tool_call>\n","suffix":"\n</tool_call>",
                                   "separator":"\n","max":2,"schema":)" + call + "}}",
                               tiny_vocab());
  const std::string one = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>";
  EXPECT_TRUE(matches(*hermes, one));
  EXPECT_TRUE(matches(*hermes, one + "\n" + one));
  EXPECT_FALSE(matches(*hermes, one + "\n" + one + "\n" + one)) << "max 2";
  EXPECT_FALSE(matches(*hermes, "{\"name\": \"f\", \"arguments\": {\"x\": 1}}")) << "the wrapper is required";
  EXPECT_FALSE(matches(*hermes, "<tool_call>\n{\"name\": \"g\", \"arguments\": {\"x\": 1}}\n</tool_call>"));
  EXPECT_FALSE(matches(*hermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": \"1\"}}\n</tool_call>"));

  auto mistral = compile_or_die(constraint_spec::kind::json_schema,
                                R"({"x-troupe-tagged":{"prefix":"[TOOL_CALLS] ","schema":{"type":"array",
                                    "minItems":1,"items":)" + call + "}}}",
                                tiny_vocab());
  EXPECT_TRUE(matches(*mistral, "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {\"x\": 2}}]"));
  EXPECT_FALSE(matches(*mistral, "[TOOL_CALLS] []"));
  EXPECT_FALSE(matches(*mistral, "[{\"name\": \"f\", \"arguments\": {\"x\": 2}}]"));

  // "or": the calls, or an answer in another schema (tools + response_format); its refs are its own.
  auto either = compile_or_die(constraint_spec::kind::json_schema,
                               R"({"x-troupe-tagged":{"prefix":"<tool_call>\n","suffix":"\n</tool_call>","schema":)" + call +
                                   R"(,"or":{"type":"object","properties":{"v":{"$ref":"#/$defs/v"}},"required":["v"],
                                   "additionalProperties":false,"$defs":{"v":{"enum":["a","b"]}}}}})",
                               tiny_vocab());
  EXPECT_TRUE(matches(*either, one));
  EXPECT_TRUE(matches(*either, "{\"v\": \"b\"}"));
  EXPECT_FALSE(matches(*either, "{\"v\": \"c\"}"));
  EXPECT_FALSE(matches(*either, "{\"v\": \"a\"}" + one));

  auto bad = compile_constraint_for_vocab(constraint_spec{constraint_spec::kind::json_schema,
                                                          R"({"x-troupe-tagged":{"prefix":"a"}})"},
                                          tiny_vocab());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("x-troupe-tagged"), std::string::npos);
}

}  // namespace
}  // namespace troupe
