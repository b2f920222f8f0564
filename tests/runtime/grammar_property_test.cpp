// Property test of the grammar engine with the real SmolLM2 vocabulary: random JSON Schemas from a
// small generator, constrained generation with random picks among the allowed tokens until the
// matcher terminates, then the decoded output must parse and validate against the schema (a small
// validator for the supported subset below). Masks are also checked against per-token acceptance
// on a sample of the vocabulary along the way.
#include <random>
#include <regex>

#include <nlohmann/json.hpp>

#include "grammar_test_support.h"

namespace troupe {
namespace {

using namespace grammar_test;
using json = nlohmann::ordered_json;

class schema_generator {
 public:
  explicit schema_generator(uint32_t seed) : rng_(seed) {}

  json root() {
    json defs = {{"item", value(2)}};
    json s = object(1);
    s["$defs"] = defs;
    s["properties"]["ref"] = {{"$ref", "#/$defs/item"}};
    return s;
  }

 private:
  int pick(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }

  json value(int depth) {
    const int k = pick(depth >= 3 ? 6 : 9);
    switch (k) {
      case 0: return string();
      case 1: {
        json s = {{"type", "integer"}};
        if (pick(2)) s["minimum"] = pick(200) - 100;
        if (pick(2)) s["maximum"] = s.contains("minimum") ? s["minimum"].get<int>() + pick(1000) : pick(50);
        return s;
      }
      case 2: {
        json s = {{"type", "number"}};
        if (pick(2)) s["minimum"] = pick(10) - 5;
        if (pick(2)) s["maximum"] = (s.contains("minimum") ? s["minimum"].get<int>() : 0) + pick(10);
        return s;
      }
      case 3: return {{"type", "boolean"}};
      case 4: return {{"enum", {"red", "green", 3, nullptr, "ü"}}};
      case 5: return {{"type", json::array({"string", "null"})}, {"maxLength", 4}};
      case 6: return object(depth + 1);
      case 7: {
        json s = {{"type", "array"}, {"items", value(depth + 1)}};
        const int lo = pick(3);
        if (pick(2)) s["minItems"] = lo;
        s["maxItems"] = lo + pick(3);
        return s;
      }
      default: return {{"anyOf", {value(depth + 1), value(depth + 1)}}};
    }
  }

  json string() {
    switch (pick(5)) {
      case 0: return {{"type", "string"}, {"maxLength", 12}};
      case 1: return {{"type", "string"}, {"minLength", 1 + pick(3)}, {"maxLength", 4 + pick(4)}};
      case 2: {
        static const char* formats[] = {"date", "date-time", "uuid", "email", "time"};
        return {{"type", "string"}, {"format", formats[pick(5)]}};
      }
      case 3: return {{"type", "string"}, {"pattern", "^[a-z]{2,5}-\\d{1,3}$"}};
      default: return {{"const", "fixed ✓"}};
    }
  }

  json object(int depth) {
    json s = {{"type", "object"}, {"properties", json::object()}, {"additionalProperties", false}};
    json required = json::array();
    const int n = 1 + pick(4);
    for (int i = 0; i < n; ++i) {
      const std::string name = "p" + std::to_string(i) + (pick(3) == 0 ? " é" : "");
      s["properties"][name] = value(depth + 1);
      if (pick(3) != 0) required.push_back(name);
    }
    s["required"] = required;
    return s;
  }

  std::mt19937 rng_;
};

bool valid(const json& s, const json& v, const json& root);

bool valid_string(const json& s, const std::string& str) {
  size_t chars = 0;
  for (unsigned char c : str) chars += (c & 0xC0) != 0x80;
  if (s.contains("minLength") && chars < s["minLength"].get<size_t>()) return false;
  if (s.contains("maxLength") && chars > s["maxLength"].get<size_t>()) return false;
  if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>()))) return false;
  if (s.contains("format")) {
    static const std::map<std::string, std::string> re = {
        {"date", R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))"},
        {"time", R"(([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))"},
        {"date-time", R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))"},
        {"uuid", R"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"},
        {"email", R"([^@\s]+@[^@\s]+\.[^@\s]+)"}};
    if (!std::regex_match(str, std::regex(re.at(s["format"].get<std::string>())))) return false;
  }
  return true;
}

bool valid_type(const json& s, const std::string& type, const json& v, const json& root) {
  if (type == "string") return v.is_string() && valid_string(s, v.get<std::string>());
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "integer" || type == "number") {
    if (!v.is_number() || (type == "integer" && !v.is_number_integer())) return false;
    const double d = v.get<double>();
    if (s.contains("minimum") && d < s["minimum"].get<double>()) return false;
    if (s.contains("maximum") && d > s["maximum"].get<double>()) return false;
    return true;
  }
  if (type == "array") {
    if (!v.is_array()) return false;
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return false;
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return false;
    for (const auto& x : v) {
      if (s.contains("items") && !valid(s["items"], x, root)) return false;
    }
    return true;
  }
  if (type == "object") {
    if (!v.is_object()) return false;
    for (const auto& r : s.value("required", json::array())) {
      if (!v.contains(r.get<std::string>())) return false;
    }
    for (const auto& [k, x] : v.items()) {
      if (!s["properties"].contains(k)) return false;  // additionalProperties: false
      if (!valid(s["properties"][k], x, root)) return false;
    }
    return true;
  }
  return false;
}

bool valid(const json& s, const json& v, const json& root) {
  if (s.contains("$ref")) return valid(root.at(json::json_pointer(s["$ref"].get<std::string>().substr(1))), v, root);
  if (s.contains("anyOf")) {
    for (const auto& a : s["anyOf"]) {
      if (valid(a, v, root)) return true;
    }
    return false;
  }
  if (s.contains("const")) return v == s["const"];
  if (s.contains("enum")) {
    for (const auto& e : s["enum"]) {
      if (e == v) return true;
    }
    return false;
  }
  if (s["type"].is_array()) {
    for (const auto& t : s["type"]) {
      if (valid_type(s, t.get<std::string>(), v, root)) return true;
    }
    return false;
  }
  return valid_type(s, s["type"].get<std::string>(), v, root);
}

// Generates until the matcher terminates, picking uniformly among allowed tokens (EOS half the
// time it is allowed). Checks a sample of the mask against accept() every few steps.
std::string generate(const compiled_constraint& c, const tokenizer& tok, std::mt19937& rng) {
  auto m = c.start();
  token_mask mask;
  mask.resize(tok.vocab_size());
  std::vector<int32_t> out;
  const int32_t eos = tok.eos_id();
  for (int step = 0; step < 3000; ++step) {
    m->fill_mask(mask);
    std::vector<int32_t> allowed;
    for (int32_t t = 0; t < tok.vocab_size(); ++t) {
      if (mask.test(t)) allowed.push_back(t);
    }
    EXPECT_FALSE(allowed.empty()) << "dead end after " << tok.decode(out).substr(0, 400);
    if (allowed.empty()) break;
    if (step % 7 == 0) {
      std::vector<int32_t> sample;
      for (int i = 0; i < 200; ++i) sample.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(tok.vocab_size())));
      for (int i = 0; i < 20; ++i) sample.push_back(allowed[rng() % allowed.size()]);
      expect_mask_exact(*m, tok.vocab_size(), sample);
    }
    int32_t t = allowed[rng() % allowed.size()];
    if (rng() % 3 == 0) {
      // A third of the time prefer tokens that close something, so unbounded strings and
      // containers end within the step budget.
      std::vector<int32_t> closing;
      for (int32_t a : allowed) {
        if (tok.token_to_piece(a).find_first_of("\"}]") != std::string::npos) closing.push_back(a);
      }
      if (!closing.empty()) t = closing[rng() % closing.size()];
    }
    if (mask.test(eos) && rng() % 2 == 0) t = eos;
    EXPECT_TRUE(m->accept(t));
    if (t == eos || tok.is_eos(t)) break;
    out.push_back(t);
    if (m->is_terminated()) break;
  }
  EXPECT_TRUE(m->is_terminated()) << tok.decode(out).substr(0, 400);
  return tok.decode(out);
}

TEST(grammar_property, random_schemas_generate_output_that_parses_and_validates) {
  const tokenizer& tok = smollm2();
  auto vocab = grammar_vocab_for(tok);
  std::mt19937 rng(20261204);
  for (uint32_t seed = 0; seed < 60; ++seed) {
    const json s = schema_generator(seed).root();
    SCOPED_TRACE(s.dump());
    auto c = compile_constraint_for_vocab(constraint_spec{constraint_spec::kind::json_schema, s.dump()}, vocab);
    ASSERT_TRUE(c.ok()) << c.err().to_string();
    const std::string text = generate(**c, tok, rng);
    const json v = json::parse(text, nullptr, false);
    ASSERT_FALSE(v.is_discarded()) << text;
    EXPECT_TRUE(valid(s, v, s)) << text;
  }
}

TEST(grammar_property, json_object_and_choice_outputs_parse) {
  const tokenizer& tok = smollm2();
  std::mt19937 rng(7);
  auto obj = compile_constraint(constraint_spec{constraint_spec::kind::json_object, ""}, tok);
  ASSERT_TRUE(obj.ok());
  for (int i = 0; i < 5; ++i) {
    const std::string text = generate(**obj, tok, rng);
    const json v = json::parse(text, nullptr, false);
    ASSERT_FALSE(v.is_discarded()) << text;
    EXPECT_TRUE(v.is_object()) << text;
  }
  auto choice = compile_constraint(constraint_spec{constraint_spec::kind::choice, R"(["positive","negative","neutral ✓"])"}, tok);
  ASSERT_TRUE(choice.ok());
  for (int i = 0; i < 5; ++i) {
    const std::string text = generate(**choice, tok, rng);
    EXPECT_TRUE(text == "positive" || text == "negative" || text == "neutral ✓") << text;
  }
}

}  // namespace
}  // namespace troupe
