// Recursive-descent parser for GBNF grammar text into grammar expressions, one rule per name.
#include "runtime/grammar_gbnf.h"

#include <map>
#include <optional>
#include <string>

#include "runtime/utf8.h"

namespace troupe {

namespace {

constexpr uint32_t k_gbnf_max_repeat = 1000;
constexpr int k_gbnf_max_nesting = 100;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

class gbnf_parser {
 public:
  explicit gbnf_parser(std::string_view t) : t_(t) {}

  result<grammar> run() {
    space(true);
    while (!err_ && !end()) {
      const size_t at = i_;
      const std::string name = parse_name();
      if (name.empty()) {
        fail("expected a rule name");
        break;
      }
      space(false);
      if (t_.substr(i_, 3) != "::=") {
        fail("expected \"::=\"");
        break;
      }
      i_ += 3;
      space(true);
      const int32_t r = rule_id(name);
      if (defined_[name]) {
        i_ = at;
        fail("rule \"" + name.substr(0, 64) + "\" defined twice");
        break;
      }
      defined_[name] = 1;
      gexpr body = alternates(0);
      if (err_) break;
      b_.define(r, body);
      space(true);
    }
    if (err_) return *err_;
    for (const auto& [name, id] : ids_) {
      if (!defined_[name]) {
        return make_error(errc::invalid_argument, "grammar: rule \"" + name.substr(0, 64) + "\" is used but not defined");
      }
    }
    auto root = ids_.find("root");
    if (root == ids_.end()) return make_error(errc::invalid_argument, "grammar: no \"root\" rule");
    return b_.build(root->second, "grammar");
  }

 private:
  bool end() const { return i_ >= t_.size(); }
  void fail(const std::string& what) {
    if (!err_) err_ = make_error(errc::invalid_argument, "grammar: offset " + std::to_string(i_) + ": " + what);
  }

  int32_t rule_id(const std::string& name) {
    auto [it, fresh] = ids_.emplace(name, 0);
    if (fresh) it->second = b_.add_rule(name);
    return it->second;
  }

  // Skips blanks and # comments; newlines too when `newlines`.
  void space(bool newlines) {
    while (!end()) {
      const char c = t_[i_];
      if (c == ' ' || c == '\t' || ((c == '\n' || c == '\r') && newlines)) {
        ++i_;
      } else if (c == '#') {
        while (!end() && t_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  std::string parse_name() {
    const size_t start = i_;
    while (!end() && is_name_char(t_[i_])) ++i_;
    return std::string(t_.substr(start, i_ - start));
  }

  std::optional<uint32_t> hex(int digits) {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      if (end() || !std::isxdigit(static_cast<unsigned char>(t_[i_]))) return std::nullopt;
      const char c = t_[i_++];
      v = v * 16 + static_cast<uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
  }

  // One character of a literal or class at i_ (escape or UTF-8), as a code point.
  std::optional<uint32_t> character() {
    if (end()) return std::nullopt;
    const auto b = static_cast<uint8_t>(t_[i_]);
    if (b == '\\') {
      ++i_;
      if (end()) return std::nullopt;
      const char e = t_[i_++];
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case 'x': return hex(2);
        case 'u': return hex(4);
        case 'U': return hex(8);
        case '\\': case '"': case '[': case ']': case '-': case '/': case '^': return static_cast<uint32_t>(e);
        default:
          --i_;
          fail(std::string("unknown escape \\") + e);
          return std::nullopt;
      }
    }
    const int n = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
    if (n == 0 || i_ + static_cast<size_t>(n) >= t_.size()) {
      ++i_;
      return b;
    }
    uint32_t cp = b & (0x3F >> n);
    for (int k = 1; k <= n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(t_[i_ + k]) & 0x3F);
    i_ += static_cast<size_t>(n) + 1;
    return cp;
  }

  gexpr literal() {
    ++i_;  // '"'
    std::string bytes;
    while (!end() && t_[i_] != '"') {
      if (t_[i_] == '\n') break;
      if (t_[i_] != '\\') {
        bytes += t_[i_++];  // raw bytes stay as written
        continue;
      }
      auto c = character();
      if (!c) {
        fail("bad escape in literal");
        return g_never();
      }
      if (*c > 0x10FFFF) {
        fail("code point out of range");
        return g_never();
      }
      if (*c < 0x80) bytes += static_cast<char>(*c);
      else append_utf8(bytes, *c);
    }
    if (end() || t_[i_] != '"') {
      fail("unterminated literal");
      return g_never();
    }
    ++i_;
    return g_lit(bytes);
  }

  gexpr char_class() {
    ++i_;  // '['
    bool negate = false;
    if (!end() && t_[i_] == '^') {
      negate = true;
      ++i_;
    }
    codepoint_set set;
    while (!end() && t_[i_] != ']') {
      auto lo = character();
      if (!lo) {
        fail("bad character in class");
        return g_never();
      }
      uint32_t hi = *lo;
      if (i_ + 1 < t_.size() && t_[i_] == '-' && t_[i_ + 1] != ']') {
        ++i_;
        auto h = character();
        if (!h) {
          fail("bad range end in class");
          return g_never();
        }
        hi = *h;
        if (hi < *lo) {
          fail("range out of order in class");
          return g_never();
        }
      }
      set.add(*lo, hi);
    }
    if (end()) {
      fail("unterminated character class");
      return g_never();
    }
    ++i_;
    if (negate) set = set.complement();
    if (set.empty()) {
      fail("empty character class");
      return g_never();
    }
    return g_codepoints(set);
  }

  std::optional<uint32_t> number() {
    uint64_t v = 0;
    const size_t start = i_;
    while (!end() && t_[i_] >= '0' && t_[i_] <= '9' && i_ - start < 9) v = v * 10 + static_cast<uint64_t>(t_[i_++] - '0');
    if (i_ == start) return std::nullopt;
    return static_cast<uint32_t>(v);
  }

  gexpr postfix(gexpr e, int depth) {
    while (!err_ && !end()) {
      const char c = t_[i_];
      if (c == '*') e = g_star(std::move(e));
      else if (c == '+') e = g_plus(std::move(e));
      else if (c == '?') e = g_opt(std::move(e));
      else if (c != '{') return e;
      if (c != '{') {
        ++i_;
        space(depth > 0);
        continue;
      }
      ++i_;
      space(false);
      auto m = number();
      if (!m) {
        fail("expected a number after '{'");
        return g_never();
      }
      uint32_t lo = *m, hi = *m;
      space(false);
      if (!end() && t_[i_] == ',') {
        ++i_;
        space(false);
        auto n = number();
        hi = n ? *n : gexpr::k_unbounded;
        space(false);
      }
      if (end() || t_[i_] != '}') {
        fail("expected '}'");
        return g_never();
      }
      ++i_;
      if (lo > k_gbnf_max_repeat || (hi != gexpr::k_unbounded && (hi > k_gbnf_max_repeat || hi < lo))) {
        fail("bad repetition bounds (at most " + std::to_string(k_gbnf_max_repeat) + ")");
        return g_never();
      }
      e = g_repeat(std::move(e), lo, hi);
      space(depth > 0);
    }
    return e;
  }

  gexpr sequence(int depth) {
    std::vector<gexpr> items;
    while (!err_ && !end()) {
      const char c = t_[i_];
      gexpr e;
      if (c == '"') {
        e = literal();
      } else if (c == '[') {
        e = char_class();
      } else if (c == '.') {
        ++i_;
        codepoint_set all;
        all.add(0, codepoint_set::k_max);
        e = g_codepoints(all.complement().complement());
      } else if (c == '(') {
        ++i_;
        space(true);
        e = alternates(depth + 1);
        if (err_) return g_never();
        space(true);
        if (end() || t_[i_] != ')') {
          fail("expected ')'");
          return g_never();
        }
        ++i_;
      } else if (is_name_char(c)) {
        const size_t at = i_;
        const std::string name = parse_name();
        // `name ::=` starts the next rule: this sequence ends before it.
        size_t j = i_;
        while (j < t_.size() && (t_[j] == ' ' || t_[j] == '\t')) ++j;
        if (t_.substr(j, 3) == "::=") {
          i_ = at;
          break;
        }
        e = g_ref(rule_id(name));
      } else {
        break;
      }
      if (err_) return g_never();
      space(depth > 0);
      items.push_back(postfix(std::move(e), depth));
    }
    return g_seq(std::move(items));
  }

  gexpr alternates(int depth) {
    if (depth > k_gbnf_max_nesting) {
      fail("groups nested too deeply");
      return g_never();
    }
    std::vector<gexpr> alts{sequence(depth)};
    while (!err_ && !end() && t_[i_] == '|') {
      ++i_;
      space(true);
      alts.push_back(sequence(depth));
    }
    return g_alt(std::move(alts));
  }

  std::string_view t_;
  size_t i_ = 0;
  grammar_builder b_;
  std::map<std::string, int32_t> ids_;
  std::map<std::string, char> defined_;
  std::optional<error> err_;
};

}  // namespace

result<grammar> gbnf_grammar(std::string_view text) { return gbnf_parser(text).run(); }

}  // namespace troupe
