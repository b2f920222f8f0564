// Recursive-descent parser for the regex subset; each character or class becomes a code point set,
// lowered to UTF-8 bytes (raw mode) or to JSON string characters (json_string mode).
#include "runtime/grammar_regex.h"

#include <cctype>
#include <optional>
#include <string>

#include "runtime/grammar_json_parts.h"

namespace troupe {

namespace {

class regex_parser {
 public:
  regex_parser(std::string_view p, regex_mode mode) : p_(p), mode_(mode) {}

  result<gexpr> run() {
    if (!p_.empty() && p_[0] == '^') ++i_;
    gexpr e = alternation(0);
    if (err_) return *err_;
    if (i_ < p_.size()) return fail(p_[i_] == ')' ? "unbalanced ')'" : "unexpected character");
    return e;
  }

 private:
  error fail(const std::string& what) {
    if (!err_) err_ = make_error(errc::invalid_argument, "regex: offset " + std::to_string(i_) + ": " + what);
    return *err_;
  }
  bool at_end() const { return i_ >= p_.size(); }
  // '$' is accepted only last (or before a closing parenthesis / alternation) and is implied anyway.
  bool is_end_anchor() const {
    return i_ < p_.size() && p_[i_] == '$' && (i_ + 1 == p_.size() || p_[i_ + 1] == ')' || p_[i_ + 1] == '|');
  }

  gexpr chars(const codepoint_set& s) {
    if (s.empty()) return g_never();
    return mode_ == regex_mode::raw ? g_codepoints(s) : json_parts::string_char(s);
  }

  gexpr alternation(int depth) {
    if (depth > k_regex_max_nesting) {
      fail("groups nested too deeply");
      return g_never();
    }
    std::vector<gexpr> alts{sequence(depth)};
    while (!err_ && !at_end() && p_[i_] == '|') {
      ++i_;
      alts.push_back(sequence(depth));
    }
    return g_alt(std::move(alts));
  }

  gexpr sequence(int depth) {
    std::vector<gexpr> items;
    while (!err_ && !at_end() && p_[i_] != '|' && p_[i_] != ')') {
      if (is_end_anchor()) {
        ++i_;
        continue;
      }
      gexpr a = atom(depth);
      if (err_) break;
      items.push_back(quantified(std::move(a)));
    }
    return g_seq(std::move(items));
  }

  std::optional<uint32_t> number() {
    uint64_t v = 0;
    size_t start = i_;
    while (!at_end() && p_[i_] >= '0' && p_[i_] <= '9' && i_ - start < 9) v = v * 10 + static_cast<uint64_t>(p_[i_++] - '0');
    if (i_ == start) return std::nullopt;
    return static_cast<uint32_t>(v);
  }

  gexpr quantified(gexpr a) {
    while (!err_ && !at_end()) {
      const char c = p_[i_];
      uint32_t lo = 0, hi = gexpr::k_unbounded;
      if (c == '*' || c == '+' || c == '?') {
        ++i_;
        lo = c == '+' ? 1 : 0;
        hi = c == '?' ? 1 : gexpr::k_unbounded;
      } else if (c == '{') {
        ++i_;
        auto m = number();
        if (!m) {
          fail("expected a number after '{'");
          return g_never();
        }
        lo = hi = *m;
        if (!at_end() && p_[i_] == ',') {
          ++i_;
          auto n = number();
          hi = n ? *n : gexpr::k_unbounded;
        }
        if (at_end() || p_[i_] != '}') {
          fail("expected '}'");
          return g_never();
        }
        ++i_;
        if (lo > k_regex_max_repeat || (hi != gexpr::k_unbounded && hi > k_regex_max_repeat)) {
          fail("repetition count over " + std::to_string(k_regex_max_repeat));
          return g_never();
        }
        if (hi < lo) {
          fail("repetition {m,n} with n < m");
          return g_never();
        }
      } else {
        return a;
      }
      if (!at_end() && p_[i_] == '?') ++i_;  // lazy: the same language
      if (!at_end() && p_[i_] == '+') {
        fail("possessive quantifiers are not supported");
        return g_never();
      }
      a = g_repeat(std::move(a), lo, hi);
    }
    return a;
  }

  // Decodes one UTF-8 character at i_ (invalid bytes are taken as Latin-1).
  uint32_t utf8_char() {
    const auto b = static_cast<uint8_t>(p_[i_]);
    int n = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
    if (n == 0 || i_ + static_cast<size_t>(n) >= p_.size()) {
      ++i_;
      return b;
    }
    uint32_t cp = b & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
      const auto c = static_cast<uint8_t>(p_[i_ + k]);
      if ((c & 0xC0) != 0x80) {
        ++i_;
        return b;
      }
      cp = (cp << 6) | (c & 0x3F);
    }
    i_ += static_cast<size_t>(n) + 1;
    return cp;
  }

  std::optional<uint32_t> hex(int digits) {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      if (at_end() || !std::isxdigit(static_cast<unsigned char>(p_[i_]))) return std::nullopt;
      const char c = p_[i_++];
      v = v * 16 + static_cast<uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
  }

  // After a backslash: a class escape (\d ...) fills `set`; a character escape too (one element).
  bool escape(codepoint_set& set) {
    if (at_end()) {
      fail("trailing backslash");
      return false;
    }
    const char c = p_[i_++];
    codepoint_set s;
    switch (c) {
      case 'd': s.add('0', '9'); break;
      case 'w': s.add('0', '9'); s.add('A', 'Z'); s.add('a', 'z'); s.add('_'); break;
      case 's': s.add(' '); s.add('\t', '\r'); break;
      case 'D': s.add('0', '9'); s = s.complement(); break;
      case 'W': s.add('0', '9'); s.add('A', 'Z'); s.add('a', 'z'); s.add('_'); s = s.complement(); break;
      case 'S': s.add(' '); s.add('\t', '\r'); s = s.complement(); break;
      case 'n': s.add('\n'); break;
      case 't': s.add('\t'); break;
      case 'r': s.add('\r'); break;
      case 'f': s.add('\f'); break;
      case 'v': s.add('\v'); break;
      case '0': s.add(0); break;
      case 'x':
      case 'u': {
        auto v = hex(c == 'x' ? 2 : 4);
        if (!v) {
          fail(std::string("expected hex digits after \\") + c);
          return false;
        }
        if (*v >= 0xD800 && *v <= 0xDFFF) {
          fail("a surrogate code point is not a character");
          return false;
        }
        s.add(*v);
        break;
      }
      default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9')) {
          --i_;
          fail(std::string("unsupported escape \\") + c + " (backreferences, \\b and the like are not supported)");
          return false;
        }
        --i_;
        s.add(utf8_char());
    }
    set.add_set(s);
    return true;
  }

  gexpr char_class() {
    // at i_: just after '['
    bool negate = false;
    if (!at_end() && p_[i_] == '^') {
      negate = true;
      ++i_;
    }
    codepoint_set set;
    bool first = true;
    while (true) {
      if (at_end()) {
        fail("unterminated character class");
        return g_never();
      }
      if (p_[i_] == ']' && !first) {
        ++i_;
        break;
      }
      first = false;
      std::optional<uint32_t> lo;
      if (p_[i_] == '\\') {
        ++i_;
        codepoint_set one;
        if (!escape(one)) return g_never();
        if (one.ranges().size() == 1 && one.ranges()[0].first == one.ranges()[0].second) {
          lo = one.ranges()[0].first;
        } else {
          set.add_set(one);
          continue;
        }
      } else {
        lo = utf8_char();
      }
      if (i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
        ++i_;
        uint32_t hi;
        if (p_[i_] == '\\') {
          ++i_;
          codepoint_set one;
          if (!escape(one)) return g_never();
          if (one.ranges().size() != 1 || one.ranges()[0].first != one.ranges()[0].second) {
            fail("a class escape cannot end a range");
            return g_never();
          }
          hi = one.ranges()[0].first;
        } else {
          hi = utf8_char();
        }
        if (hi < *lo) {
          fail("range out of order in character class");
          return g_never();
        }
        set.add(*lo, hi);
      } else {
        set.add(*lo);
      }
    }
    if (negate) set = set.complement();
    return chars(set);
  }

  gexpr atom(int depth) {
    const char c = p_[i_];
    switch (c) {
      case '(': {
        ++i_;
        if (p_.substr(i_, 2) == "?:") {
          i_ += 2;
        } else if (p_.substr(i_, 3) == "?P<" || (p_.substr(i_, 2) == "?<" && p_.substr(i_, 3) != "?<=" &&
                                                  p_.substr(i_, 3) != "?<!")) {
          const size_t close = p_.find('>', i_);
          if (close == std::string_view::npos) {
            fail("unterminated group name");
            return g_never();
          }
          i_ = close + 1;
        } else if (!at_end() && p_[i_] == '?') {
          fail("lookaround and inline flags are not supported");
          return g_never();
        }
        gexpr e = alternation(depth + 1);
        if (err_) return g_never();
        if (at_end() || p_[i_] != ')') {
          fail("missing ')'");
          return g_never();
        }
        ++i_;
        return e;
      }
      case '[':
        ++i_;
        return char_class();
      case '.': {
        ++i_;
        codepoint_set nl;
        nl.add('\n');
        return chars(nl.complement());
      }
      case '\\': {
        ++i_;
        codepoint_set s;
        if (!escape(s)) return g_never();
        return chars(s);
      }
      case '^':
        fail("'^' is only supported at the start");
        return g_never();
      case '$':
        fail("'$' is only supported at the end");
        return g_never();
      case '*':
      case '+':
      case '?':
      case '{':
        fail("nothing to repeat");
        return g_never();
      default: {
        codepoint_set s;
        s.add(utf8_char());
        return chars(s);
      }
    }
  }

  std::string_view p_;
  regex_mode mode_;
  size_t i_ = 0;
  std::optional<error> err_;
};

}  // namespace

result<gexpr> parse_regex(std::string_view pattern, regex_mode mode) {
  return regex_parser(pattern, mode).run();
}

}  // namespace troupe
