// The JSON Schema walker: each subschema becomes a grammar expression; $ref targets become rules.
#include "runtime/grammar_json_schema.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/grammar_json_parts.h"
#include "runtime/grammar_regex.h"

namespace troupe {

namespace {

using ojson = nlohmann::ordered_json;

const std::set<std::string> k_annotations = {"title", "description", "default", "examples", "$schema", "$id",
                                             "$comment", "deprecated", "readOnly", "writeOnly"};
const std::set<std::string> k_supported = {
    "type", "properties", "required", "additionalProperties", "enum", "const", "items", "minItems", "maxItems",
    "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "minLength", "maxLength", "format", "pattern",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};

// Deepest bracket nesting of JSON text (strings skipped): nlohmann's parser recurses per level.
int json_nesting(std::string_view s) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

// UTF-8 to code points; false on a malformed sequence.
bool decode_utf8(const std::string& s, std::u32string& out) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? b : b & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    out.push_back(static_cast<char32_t>(cp));
    i += len;
  }
  return true;
}

struct schema_tag {
  std::string prefix, suffix, separator;
  uint32_t max = 1;  // instances; gexpr::k_unbounded for any number
};

class schema_compiler {
 public:
  schema_compiler(const ojson& root, bool strict) : root_(&root), strict_(strict) {}

  // tag: the instances framed as a model's native tool calls (see json_schema_grammar); `alt`: a
  // schema matched instead of them (its $refs resolve in itself).
  result<grammar> run(const std::optional<schema_tag>& tag = std::nullopt, const ojson* alt = nullptr) {
    const int32_t top = b_.add_rule("root");
    gexpr e = compile(*root_, "$", 0, 0);
    if (err_) return *err_;
    if (tag) {
      const gexpr one = as_rule(g_seq({g_lit(tag->prefix), as_rule(e, "tagged-value"), g_lit(tag->suffix)}), "tagged");
      const gexpr more = g_seq({g_lit(tag->separator), one});
      if (tag->max == gexpr::k_unbounded) e = g_seq({one, g_star(more)});
      else e = tag->max <= 1 ? one : g_seq({one, g_repeat(more, 0, tag->max - 1)});
    }
    if (alt) {
      root_ = alt;
      ref_rules_.clear();  // refs of the other root: compiled anew
      const gexpr other = compile(*alt, "$", 0, 0);
      if (err_) return *err_;
      e = g_alt({e, other});
    }
    b_.define(top, e);
    auto g = b_.build(top, "$");
    if (!g.ok() && !cut_path_.empty()) {
      return make_error(errc::invalid_argument,
                        cut_path_ + ": recursive \"$ref\" has no finite instance within " +
                            std::to_string(k_json_schema_max_recursion) + " levels of recursion");
    }
    return g;
  }

 private:
  gexpr fail(const std::string& path, const std::string& what) {
    if (!err_) err_ = make_error(errc::invalid_argument, path + ": " + what);
    return g_never();
  }

  gexpr as_rule(gexpr e, const std::string& name) {
    if (e.k == gexpr::kind::ref || e.k == gexpr::kind::bytes) return e;
    const int32_t r = b_.add_rule(name);
    b_.define(r, e);
    return g_ref(r);
  }

  std::optional<uint32_t> count(const ojson& s, const char* key, const std::string& path) {
    if (!s.contains(key)) return std::nullopt;
    const ojson& v = s[key];
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
      fail(path + "." + key, std::string("\"") + key + "\" must be a non-negative integer");
      return std::nullopt;
    }
    const uint64_t n = v.get<uint64_t>();
    if (n > k_json_schema_max_count) {
      fail(path + "." + key, std::string("\"") + key + "\" over " + std::to_string(k_json_schema_max_count) +
                                 " is not supported");
      return std::nullopt;
    }
    return static_cast<uint32_t>(n);
  }

  gexpr compile(const ojson& s, const std::string& path, int nesting, int recursion);
  gexpr compile_ref(const ojson& s, const std::string& path, int nesting, int recursion);
  gexpr compile_type(const ojson& s, const std::string& type, const std::string& path, int nesting, int recursion);
  gexpr compile_string(const ojson& s, const std::string& path);
  gexpr compile_number(const ojson& s, const std::string& path, bool integer);
  gexpr compile_object(const ojson& s, const std::string& path, int nesting, int recursion);
  gexpr compile_array(const ojson& s, const std::string& path, int nesting, int recursion);
  gexpr key_except(const std::vector<std::string>& names);

  const ojson* root_;
  bool strict_;
  grammar_builder b_;
  json_parts parts_{b_};
  std::optional<error> err_;
  std::string cut_path_;
  std::map<std::pair<std::string, int>, int32_t> ref_rules_;
  std::vector<std::string> ref_chain_;
  int num_subschemas_ = 0;
};

gexpr schema_compiler::compile(const ojson& s, const std::string& path, int nesting, int recursion) {
  if (err_) return g_never();
  if (++num_subschemas_ > k_json_schema_max_subschemas || b_.over_limit()) {
    return fail(path, "the schema is too large");
  }
  if (nesting > k_json_schema_max_nesting) return fail(path, "schemas nested too deeply");
  if (s.is_boolean()) return s.get<bool>() ? parts_.any_value() : g_never();
  if (!s.is_object()) return fail(path, "a schema must be an object or a boolean");
  for (const auto& [k, v] : s.items()) {
    if (strict_ && !k_supported.count(k) && !k_annotations.count(k)) {
      return fail(path, "unsupported keyword \"" + k + "\"");
    }
  }
  auto validation_siblings = [&](const char* self) -> std::optional<std::string> {
    for (const auto& [k, v] : s.items()) {
      if (k != self && k_supported.count(k) && k != "$defs" && k != "definitions") return k;
    }
    return std::nullopt;
  };
  for (const char* comb : {"$ref", "anyOf", "oneOf", "allOf"}) {
    if (!s.contains(comb)) continue;
    if (auto other = validation_siblings(comb)) {
      return fail(path, "unsupported keyword \"" + *other + "\" alongside \"" + comb + "\"");
    }
  }
  if (s.contains("$ref")) return compile_ref(s, path, nesting, recursion);
  for (const char* comb : {"anyOf", "oneOf", "allOf"}) {
    if (!s.contains(comb)) continue;
    const ojson& list = s[comb];
    const std::string p = path + "." + comb;
    if (!list.is_array() || list.empty()) return fail(p, std::string("\"") + comb + "\" must be a non-empty array");
    if (std::string(comb) == "allOf" && list.size() != 1) {
      return fail(p, "\"allOf\" with more than one schema is not supported");
    }
    std::vector<gexpr> alts;
    for (size_t i = 0; i < list.size(); ++i) {
      alts.push_back(compile(list[i], p + "[" + std::to_string(i) + "]", nesting + 1, recursion));
    }
    return g_alt(std::move(alts));
  }
  if (s.contains("const")) return g_lit(s["const"].dump());
  if (s.contains("enum")) {
    const ojson& list = s["enum"];
    if (!list.is_array() || list.empty()) return fail(path + ".enum", "\"enum\" must be a non-empty array");
    std::vector<gexpr> alts;
    for (const auto& v : list) alts.push_back(g_lit(v.dump()));
    return g_alt(std::move(alts));
  }
  std::vector<std::string> types;
  if (s.contains("type")) {
    const ojson& t = s["type"];
    if (t.is_string()) {
      types.push_back(t.get<std::string>());
    } else if (t.is_array() && !t.empty()) {
      for (const auto& x : t) {
        if (!x.is_string()) return fail(path + ".type", "\"type\" must be a string or an array of strings");
        types.push_back(x.get<std::string>());
      }
    } else {
      return fail(path + ".type", "\"type\" must be a string or an array of strings");
    }
  } else if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) {
    types = {"object"};
  } else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) {
    types = {"array"};
  } else if (s.contains("minLength") || s.contains("maxLength") || s.contains("pattern") || s.contains("format")) {
    types = {"string"};
  } else if (s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") ||
             s.contains("exclusiveMaximum")) {
    types = {"number"};
  } else {
    return parts_.any_value();
  }
  std::vector<gexpr> alts;
  for (const auto& t : types) alts.push_back(compile_type(s, t, path, nesting, recursion));
  return g_alt(std::move(alts));
}

gexpr schema_compiler::compile_ref(const ojson& s, const std::string& path, int nesting, int recursion) {
  const std::string p = path + ".$ref";
  if (!s["$ref"].is_string()) return fail(p, "\"$ref\" must be a string");
  const std::string ref = s["$ref"].get<std::string>();
  if (ref.empty() || ref[0] != '#') return fail(p, "only local \"$ref\" (\"#...\") is supported");
  const std::string pointer = ref.substr(1);
  const ojson* target = nullptr;
  try {
    const ojson::json_pointer ptr(pointer);
    if (root_->contains(ptr)) target = &root_->at(ptr);
  } catch (const std::exception&) {
    return fail(p, "\"$ref\" is not a valid JSON pointer: \"" + ref.substr(0, 64) + "\"");
  }
  if (!target) return fail(p, "\"$ref\" target not found: \"" + ref.substr(0, 64) + "\"");
  const bool recursive = std::find(ref_chain_.begin(), ref_chain_.end(), pointer) != ref_chain_.end();
  const int level = recursion + (recursive ? 1 : 0);
  if (level > k_json_schema_max_recursion) {
    if (cut_path_.empty()) cut_path_ = p;
    return g_never();
  }
  const auto key = std::make_pair(pointer, level);
  auto it = ref_rules_.find(key);
  if (it != ref_rules_.end()) return g_ref(it->second);
  const int32_t rule = b_.add_rule("ref" + pointer);
  ref_rules_.emplace(key, rule);
  ref_chain_.push_back(pointer);
  std::string target_path = "$";
  for (char c : pointer) target_path += c == '/' ? '.' : c;
  gexpr body = compile(*target, target_path, nesting + 1, level);
  ref_chain_.pop_back();
  b_.define(rule, body);
  return g_ref(rule);
}

gexpr schema_compiler::compile_type(const ojson& s, const std::string& type, const std::string& path, int nesting,
                                    int recursion) {
  if (type == "string") return compile_string(s, path);
  if (type == "integer") return compile_number(s, path, true);
  if (type == "number") return compile_number(s, path, false);
  if (type == "boolean") return g_alt({g_lit("true"), g_lit("false")});
  if (type == "null") return g_lit("null");
  if (type == "object") return compile_object(s, path, nesting, recursion);
  if (type == "array") return compile_array(s, path, nesting, recursion);
  return fail(path + ".type", "unknown type \"" + type.substr(0, 32) + "\"");
}

gexpr schema_compiler::compile_string(const ojson& s, const std::string& path) {
  const bool lengths = s.contains("minLength") || s.contains("maxLength");
  if (s.contains("format")) {
    if (!s["format"].is_string()) return fail(path + ".format", "\"format\" must be a string");
    const std::string f = s["format"].get<std::string>();
    if (lengths || s.contains("pattern")) return fail(path + ".format", "\"format\" with a length or pattern is not supported");
    auto body = json_parts::format_body(f);
    if (!body && !strict_) return parts_.any_string();
    if (!body) return fail(path + ".format", "unsupported format \"" + f.substr(0, 32) + "\"");
    return g_seq({g_byte('"'), std::move(*body), g_byte('"')});
  }
  if (s.contains("pattern")) {
    if (!s["pattern"].is_string()) return fail(path + ".pattern", "\"pattern\" must be a string");
    if (lengths) return fail(path + ".pattern", "\"pattern\" with minLength/maxLength is not supported");
    std::string re = s["pattern"].get<std::string>();
    // JSON Schema patterns are unanchored: a missing '^' or '$' lets anything come before or after.
    const bool anchored_start = !re.empty() && re[0] == '^';
    bool anchored_end = !re.empty() && re.back() == '$';
    if (anchored_end) {
      size_t slashes = 0;
      for (size_t i = re.size() - 1; i > 0 && re[i - 1] == '\\'; --i) ++slashes;
      anchored_end = slashes % 2 == 0;
    }
    auto body = parse_regex(re, regex_mode::json_string);
    if (!body.ok() && !strict_) return parts_.any_string();
    if (!body.ok()) return fail(path + ".pattern", body.err().message);
    const gexpr any = g_star(json_parts::any_string_char());
    return g_seq({g_byte('"'), anchored_start ? g_empty() : any, as_rule(std::move(*body), "pattern"),
                  anchored_end ? g_empty() : any, g_byte('"')});
  }
  const auto lo = count(s, "minLength", path);
  const auto hi = count(s, "maxLength", path);
  if (err_) return g_never();
  if (lo && hi && *lo > *hi) return fail(path + ".maxLength", "\"maxLength\" is below \"minLength\"");
  if (!lengths) return parts_.any_string();
  const gexpr ch = as_rule(json_parts::any_string_char(), "char");
  return g_seq({g_byte('"'), g_repeat(ch, lo.value_or(0), hi ? *hi : gexpr::k_unbounded), g_byte('"')});
}


gexpr schema_compiler::compile_number(const ojson& s, const std::string& path, bool integer) {
  std::optional<int64_t> lo, hi;
  for (const char* key : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
    if (!s.contains(key)) continue;
    const std::string p = path + "." + key;
    const ojson& v = s[key];
    if (!v.is_number()) return fail(p, std::string("\"") + key + "\" must be a number");
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(k_json_max_integer)) {
      return fail(p, std::string("\"") + key + "\" out of the supported range");
    }
    const bool is_min = key[0] == 'm' ? std::string(key) == "minimum" : std::string(key) == "exclusiveMinimum";
    const bool exclusive = key[0] == 'e';
    // Bounds become integers rounded inward (ceil for minimums, floor for maximums, one step more
    // when exclusive and already integral): every number generated then satisfies the original.
    int64_t bound;
    if (is_min) {
      const double c = std::ceil(d);
      bound = static_cast<int64_t>(c) + (exclusive && c == d ? 1 : 0);
    } else {
      const double f = std::floor(d);
      bound = static_cast<int64_t>(f) - (exclusive && f == d ? 1 : 0);
    }
    if (is_min) lo = lo ? std::max(*lo, bound) : bound;
    else hi = hi ? std::min(*hi, bound) : bound;
  }
  if (lo && hi && *lo > *hi) {
    return fail(path, integer ? "no integer satisfies the bounds"
                              : "no number satisfies the bounds once rounded inward to integers "
                                "(non-integral bounds are rounded; unsupported range)");
  }
  if (integer) return json_parts::integer_range(lo.value_or(-k_json_max_integer), hi.value_or(k_json_max_integer));
  if (!lo && !hi) return parts_.number();
  return json_parts::number_range(lo, hi);
}

// A JSON string key that is none of `names` (each printable ASCII without '"' or '\'): a trie of
// the names where each node may end (if no name ends there), take a character no name continues
// with and then anything, or follow a name.
// Keys are matched per code point: the grammar spells each code point one way (string_char), so a
// trie over the names' code points keeps every spelling of a declared name out, ASCII or not.
gexpr schema_compiler::key_except(const std::vector<std::string>& names) {
  std::vector<std::u32string> points;
  for (const auto& n : names) {
    std::u32string cps;
    if (!decode_utf8(n, cps)) return parts_.any_string();  // nlohmann validated it: unreachable
    points.push_back(std::move(cps));
  }
  const gexpr rest = as_rule(g_star(json_parts::any_string_char()), "rest");
  auto build = [&](auto&& self, const std::u32string& prefix) -> gexpr {
    std::set<char32_t> next;
    bool ends = false;
    for (const auto& n : points) {
      if (n.size() >= prefix.size() && n.compare(0, prefix.size(), prefix) == 0) {
        if (n.size() == prefix.size()) ends = true;
        else next.insert(n[prefix.size()]);
      }
    }
    std::vector<gexpr> alts;
    if (!ends) alts.push_back(g_empty());
    codepoint_set used;
    for (char32_t c : next) used.add(static_cast<uint32_t>(c));
    alts.push_back(g_seq({json_parts::string_char(used.complement()), rest}));
    for (char32_t c : next) {
      codepoint_set one;
      one.add(static_cast<uint32_t>(c));
      alts.push_back(g_seq({json_parts::string_char(one), self(self, prefix + c)}));
    }
    return g_alt(std::move(alts));
  };
  return g_seq({g_byte('"'), as_rule(build(build, std::u32string()), "key"), g_byte('"')});
}

gexpr schema_compiler::compile_object(const ojson& s, const std::string& path, int nesting, int recursion) {
  // A bare {"type": "object"} means any object; once properties are listed, absent
  // additionalProperties means none (what structured-output clients expect).
  if (!s.contains("properties") && !s.contains("required") && !s.contains("additionalProperties")) {
    return parts_.any_object();
  }
  struct member {
    std::string name;
    gexpr kv;
    bool required;
  };
  std::vector<member> members;
  std::set<std::string> required;
  if (s.contains("required")) {
    const ojson& r = s["required"];
    if (!r.is_array()) return fail(path + ".required", "\"required\" must be an array of strings");
    for (const auto& x : r) {
      if (!x.is_string()) return fail(path + ".required", "\"required\" must be an array of strings");
      required.insert(x.get<std::string>());
    }
  }
  const ojson* extra = nullptr;  // schema of other keys, nullptr when none are allowed
  if (s.contains("additionalProperties")) {
    const ojson& a = s["additionalProperties"];
    if (a.is_object() || (a.is_boolean() && a.get<bool>())) extra = &a;
    else if (!a.is_boolean()) return fail(path + ".additionalProperties", "must be a boolean or a schema");
  }
  auto kv = [&](const std::string& name, gexpr value) {
    return g_seq({g_lit(ojson(name).dump()), g_byte(':'), parts_.ws(), std::move(value)});
  };
  std::vector<std::string> names;
  if (s.contains("properties")) {
    const ojson& props = s["properties"];
    if (!props.is_object()) return fail(path + ".properties", "\"properties\" must be an object");
    for (const auto& [name, sub] : props.items()) {
      gexpr v = compile(sub, path + ".properties." + name, nesting + 1, recursion);
      if (err_) return g_never();
      names.push_back(name);
      members.push_back({name, kv(name, std::move(v)), required.count(name) > 0});
    }
  }
  for (const auto& name : required) {
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    if (!extra) return fail(path + ".required", "\"" + name.substr(0, 64) + "\" is required but not allowed");
    members.push_back({name, kv(name, compile(*extra, path + ".additionalProperties", nesting + 1, recursion)), true});
    names.push_back(name);
  }
  if (err_) return g_never();
  const size_t n = members.size();
  // T[i]: the members from i on, after at least one; F[i]: the members from i on, none yet.
  std::vector<int32_t> t(n + 1), f(n + 1);
  for (size_t i = 0; i <= n; ++i) {
    t[i] = b_.add_rule("obj_t");
    f[i] = b_.add_rule("obj_f");
  }
  if (extra) {
    gexpr other = g_seq({key_except(names), g_byte(':'), parts_.ws(),
                         compile(*extra, path + ".additionalProperties", nesting + 1, recursion)});
    const gexpr other_rule = as_rule(std::move(other), "extra");
    b_.define(t[n], g_star(g_seq({g_byte(','), parts_.ws(), other_rule})));
    b_.define(f[n], g_seq({other_rule, g_ref(t[n])}));
  } else {
    b_.define(t[n], g_empty());
    b_.define(f[n], g_never());
  }
  for (size_t i = n; i-- > 0;) {
    const gexpr with_comma = g_seq({g_byte(','), parts_.ws(), members[i].kv});
    b_.define(t[i], g_seq({members[i].required ? with_comma : g_opt(with_comma), g_ref(t[i + 1])}));
    std::vector<gexpr> alts{g_seq({members[i].kv, g_ref(t[i + 1])})};
    if (!members[i].required) alts.push_back(g_ref(f[i + 1]));
    b_.define(f[i], g_alt(std::move(alts)));
  }
  bool any_required = false;
  for (const auto& m : members) any_required |= m.required;
  std::vector<gexpr> alts{g_seq({g_byte('{'), parts_.ws(), g_ref(f[0]), parts_.ws(), g_byte('}')})};
  if (!any_required) alts.push_back(g_lit("{}"));
  return g_alt(std::move(alts));
}

gexpr schema_compiler::compile_array(const ojson& s, const std::string& path, int nesting, int recursion) {
  const auto lo = count(s, "minItems", path);
  const auto hi = count(s, "maxItems", path);
  if (err_) return g_never();
  if (lo && hi && *lo > *hi) return fail(path + ".maxItems", "\"maxItems\" is below \"minItems\"");
  gexpr item = s.contains("items") ? compile(s["items"], path + ".items", nesting + 1, recursion) : parts_.any_value();
  if (err_) return g_never();
  const uint32_t min = lo.value_or(0);
  const uint32_t max = hi ? *hi : gexpr::k_unbounded;
  std::vector<gexpr> alts;
  if (min == 0) alts.push_back(g_lit("[]"));
  if (max > 0 && !item.is_never()) {
    const gexpr it = as_rule(std::move(item), "item");
    const uint32_t more_min = min > 0 ? min - 1 : 0;
    const uint32_t more_max = max == gexpr::k_unbounded ? max : max - 1;
    alts.push_back(g_seq({g_byte('['), parts_.ws(), it,
                          g_repeat(g_seq({g_byte(','), parts_.ws(), it}), more_min, more_max), parts_.ws(),
                          g_byte(']')}));
  }
  return g_alt(std::move(alts));
}

}  // namespace

result<grammar> json_schema_grammar(std::string_view schema_text, bool strict) {
  if (json_nesting(schema_text) > 2 * k_json_schema_max_nesting) {
    return make_error(errc::invalid_argument, "$: the schema is nested too deeply");
  }
  ojson schema = ojson::parse(schema_text, nullptr, false);
  if (schema.is_discarded()) return make_error(errc::invalid_argument, "$: the schema is not valid JSON");
  if (schema.is_object() && schema.size() == 1 && schema.contains(k_tagged_schema_key)) {
    const ojson& t = schema[k_tagged_schema_key];
    const auto text = [&](const char* k) { return t.contains(k) && t[k].is_string() ? t[k].get<std::string>() : ""; };
    if (!t.is_object() || !t.contains("schema") || !t["schema"].is_object()) {
      return make_error(errc::invalid_argument, std::string("$.") + k_tagged_schema_key + ": needs a \"schema\" object");
    }
    schema_tag tag{text("prefix"), text("suffix"), text("separator"), 1};
    if (t.contains("max") && t["max"].is_number_unsigned()) {
      tag.max = static_cast<uint32_t>(std::min<uint64_t>(t["max"].get<uint64_t>(), gexpr::k_unbounded));
    }
    const bool has_alt = t.contains("or") && t["or"].is_object();
    return schema_compiler(t["schema"], strict).run(tag, has_alt ? &t["or"] : nullptr);
  }
  return schema_compiler(schema, strict).run();
}

grammar json_object_grammar() {
  grammar_builder b;
  json_parts parts(b);
  const int32_t root = b.add_rule("root");
  b.define(root, parts.any_object());
  auto g = b.build(root, "json_object");
  return std::move(*g);
}

}  // namespace troupe
