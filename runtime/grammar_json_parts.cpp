// JSON building blocks: escaping, numbers and integer ranges as digit-string alternatives, formats.
#include "runtime/grammar_json_parts.h"

#include <algorithm>

#include "runtime/grammar_regex.h"

namespace troupe {

namespace {

gexpr digit() {
  byte_set s;
  s.add_range('0', '9');
  return g_bytes(s);
}

gexpr digit_range(char lo, char hi) {
  byte_set s;
  s.add_range(static_cast<uint8_t>(lo), static_cast<uint8_t>(hi));
  return g_bytes(s);
}

// Every digit string of lo's length between lo and hi (leading zeros allowed).
gexpr digits_between(const std::string& lo, const std::string& hi) {
  if (lo.empty()) return g_empty();
  const size_t n = lo.size() - 1;
  const std::string rest_lo = lo.substr(1), rest_hi = hi.substr(1);
  if (lo[0] == hi[0]) return g_seq({g_byte(static_cast<uint8_t>(lo[0])), digits_between(rest_lo, rest_hi)});
  if (rest_lo == std::string(n, '0') && rest_hi == std::string(n, '9')) {
    return g_seq({digit_range(lo[0], hi[0]), g_repeat(digit(), static_cast<uint32_t>(n), static_cast<uint32_t>(n))});
  }
  std::vector<gexpr> alts;
  alts.push_back(g_seq({g_byte(static_cast<uint8_t>(lo[0])), digits_between(rest_lo, std::string(n, '9'))}));
  if (hi[0] - lo[0] > 1) {
    alts.push_back(g_seq({digit_range(static_cast<char>(lo[0] + 1), static_cast<char>(hi[0] - 1)),
                          g_repeat(digit(), static_cast<uint32_t>(n), static_cast<uint32_t>(n))}));
  }
  alts.push_back(g_seq({g_byte(static_cast<uint8_t>(hi[0])), digits_between(std::string(n, '0'), rest_hi)}));
  return g_alt(std::move(alts));
}

int64_t pow10(size_t n) {
  int64_t p = 1;
  for (size_t i = 0; i < n; ++i) p *= 10;
  return p;
}

// Non-negative integers in [a, b] without leading zeros.
gexpr nonneg_range(int64_t a, int64_t b) {
  if (a > b) return g_never();
  std::vector<gexpr> alts;
  const size_t la = std::to_string(a).size(), lb = std::to_string(b).size();
  for (size_t len = la; len <= lb; ++len) {
    const int64_t lo = std::max(a, len == 1 ? int64_t{0} : pow10(len - 1));
    const int64_t hi = std::min(b, pow10(len) - 1);
    if (lo <= hi) alts.push_back(digits_between(std::to_string(lo), std::to_string(hi)));
  }
  return g_alt(std::move(alts));
}

gexpr fraction() { return g_opt(g_seq({g_byte('.'), g_repeat(digit(), 1, 15)})); }
gexpr zero_fraction() { return g_opt(g_seq({g_byte('.'), g_repeat(g_byte('0'), 1, 15)})); }

// Magnitudes m in [c, d] written as digits with a fraction: below d any fraction, at d only zeros
// (unless d is the open-ended cap).
gexpr magnitude(int64_t c, int64_t d, bool d_open) {
  if (d_open) return g_seq({nonneg_range(c, d), fraction()});
  return g_alt({g_seq({nonneg_range(c, d - 1), fraction()}), g_seq({nonneg_range(d, d), zero_fraction()})});
}

}  // namespace

gexpr json_parts::ws() {
  if (ws_ < 0) {
    ws_ = b_.add_rule("ws");
    b_.define(ws_, g_opt(g_byte(' ')));
  }
  return g_ref(ws_);
}

gexpr json_parts::any_string_char() {
  codepoint_set all;
  all.add(0, codepoint_set::k_max);
  return string_char(all.complement().complement());
}

gexpr json_parts::string_char(const codepoint_set& allowed) {
  codepoint_set plain;
  std::vector<gexpr> alts;
  for (const auto& [lo, hi] : allowed.ranges()) {
    for (uint32_t c = lo; c <= std::min<uint32_t>(hi, 0x5C); ++c) {
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      static const char* hex = "0123456789abcdef";
      switch (c) {
        case '"': alts.push_back(g_lit("\\\"")); break;
        case '\\': alts.push_back(g_lit("\\\\")); break;
        case '\n': alts.push_back(g_lit("\\n")); break;
        case '\t': alts.push_back(g_lit("\\t")); break;
        case '\r': alts.push_back(g_lit("\\r")); break;
        case '\b': alts.push_back(g_lit("\\b")); break;
        case '\f': alts.push_back(g_lit("\\f")); break;
        default: alts.push_back(g_lit(std::string("\\u00") + hex[c >> 4] + hex[c & 15]));
      }
    }
    plain.add(lo, hi);
  }
  codepoint_set special;
  special.add(0, 0x1F);
  special.add('"');
  special.add('\\');
  codepoint_set keep;
  for (const auto& [lo, hi] : plain.ranges()) {
    // plain minus special: walk the three special ranges
    uint32_t l = lo;
    for (const auto& [slo, shi] : special.ranges()) {
      if (shi < l || slo > hi) continue;
      if (slo > l) keep.add(l, slo - 1);
      l = std::max(l, shi + 1);
    }
    if (l <= hi) keep.add(l, hi);
  }
  alts.insert(alts.begin(), g_codepoints(keep));
  return g_alt(std::move(alts));
}

gexpr json_parts::any_string() {
  if (string_ < 0) {
    string_ = b_.add_rule("string");
    // Any character, or an escape; \u escapes exclude surrogates (a lone one is invalid JSON).
    byte_set hex, hex_no_d, lo8;
    for (char c : std::string("0123456789abcdefABCDEF")) hex.add(static_cast<uint8_t>(c));
    for (char c : std::string("0123456789abcefABCEF")) hex_no_d.add(static_cast<uint8_t>(c));
    lo8.add_range('0', '7');
    byte_set esc;
    for (char c : std::string("\"\\/bfnrt")) esc.add(static_cast<uint8_t>(c));
    gexpr u = g_seq({g_byte('u'), g_alt({g_seq({g_bytes(hex_no_d), g_bytes(hex)}),
                                         g_seq({g_bytes([] { byte_set d; d.add('d'); d.add('D'); return d; }()), g_bytes(lo8)})}),
                     g_bytes(hex), g_bytes(hex)});
    codepoint_set plain;
    plain.add(0x20, 0x21);
    plain.add(0x23, 0x5B);
    plain.add(0x5D, codepoint_set::k_max);
    plain = plain.complement().complement();
    gexpr ch = g_alt({g_codepoints(plain), g_seq({g_byte('\\'), g_alt({g_bytes(esc), u})})});
    b_.define(string_, g_seq({g_byte('"'), g_star(ch), g_byte('"')}));
  }
  return g_ref(string_);
}

gexpr json_parts::integer() { return integer_range(-k_json_max_integer, k_json_max_integer); }

gexpr json_parts::number() {
  byte_set e, sign;
  e.add('e');
  e.add('E');
  sign.add('+');
  sign.add('-');
  // "-0" is a valid start here ("-0.5"), unlike for integers.
  const gexpr int_part = g_seq({g_opt(g_byte('-')), nonneg_range(0, k_json_max_integer)});
  return g_seq({int_part, fraction(), g_opt(g_seq({g_bytes(e), g_opt(g_bytes(sign)), g_repeat(digit(), 1, 3)}))});
}

gexpr json_parts::integer_range(int64_t lo, int64_t hi) {
  lo = std::max(lo, -k_json_max_integer);
  hi = std::min(hi, k_json_max_integer);
  if (lo > hi) return g_never();
  std::vector<gexpr> alts;
  if (hi >= 0) alts.push_back(nonneg_range(std::max<int64_t>(lo, 0), hi));
  if (lo < 0) alts.push_back(g_seq({g_byte('-'), nonneg_range(std::max<int64_t>(-hi, 1), -lo)}));
  return g_alt(std::move(alts));
}

gexpr json_parts::number_range(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  const int64_t l = std::max(lo.value_or(-k_json_max_integer), -k_json_max_integer);
  const int64_t h = std::min(hi.value_or(k_json_max_integer), k_json_max_integer);
  if (l > h) return g_never();
  std::vector<gexpr> alts;
  if (h >= 0) alts.push_back(magnitude(std::max<int64_t>(l, 0), h, !hi.has_value()));
  if (l < 0) alts.push_back(g_seq({g_byte('-'), magnitude(std::max<int64_t>(-h, 0), -l, !lo.has_value())}));
  return g_alt(std::move(alts));
}

std::optional<gexpr> json_parts::format_body(const std::string& format) {
  static const std::string date = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])";
  static const std::string time =
      "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
  std::string re;
  if (format == "date") re = date;
  else if (format == "time") re = time;
  else if (format == "date-time") re = date + "T" + time;
  else if (format == "uuid") re = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
  else if (format == "email") re = "[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63}){1,4}";
  else if (format == "ipv4") re = "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  else return std::nullopt;
  auto e = parse_regex(re, regex_mode::json_string);
  if (!e.ok()) return std::nullopt;
  return std::move(*e);
}

gexpr json_parts::any_value() {
  if (value_ >= 0) return g_ref(value_);
  value_ = b_.add_rule("value");
  object_ = b_.add_rule("object");
  array_ = b_.add_rule("array");
  const gexpr member = g_seq({any_string(), g_byte(':'), ws(), g_ref(value_)});
  b_.define(object_, g_alt({g_lit("{}"), g_seq({g_byte('{'), ws(), member,
                                                g_star(g_seq({g_byte(','), ws(), member})), ws(), g_byte('}')})}));
  b_.define(array_, g_alt({g_lit("[]"), g_seq({g_byte('['), ws(), g_ref(value_),
                                               g_star(g_seq({g_byte(','), ws(), g_ref(value_)})), ws(), g_byte(']')})}));
  b_.define(value_, g_alt({g_ref(object_), g_ref(array_), any_string(), number(), g_lit("true"), g_lit("false"),
                           g_lit("null")}));
  return g_ref(value_);
}

gexpr json_parts::any_object() {
  any_value();
  return g_ref(object_);
}

}  // namespace troupe
