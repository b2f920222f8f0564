// Jinja lexer: template text and {{ }}, {% %}, {# #} tags into tokens, applying whitespace control
// ({%- -%}, {{- -}}, {%+) and the trim_blocks/lstrip_blocks options the way jinja2 does.
#include "runtime/jinja_ast.h"

#include <cctype>

namespace troupe::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

struct lexer {
  lexer(const std::string& s, const lex_options& o) : src(s), opt(o) {}
  const std::string& src;
  lex_options opt;
  size_t pos = 0;
  int line = 1;
  std::vector<token> out;

  [[noreturn]] void fail(const std::string& what) {
    throw error("syntax error at line " + std::to_string(line) + ": " + what);
  }
  bool starts(const char* s) const { return src.compare(pos, std::char_traits<char>::length(s), s) == 0; }
  void advance(size_t n) {
    for (size_t i = 0; i < n && pos < src.size(); ++i, ++pos)
      if (src[pos] == '\n') ++line;
  }
  void push(tok k, std::string text, json value = {}) { out.push_back(token{k, std::move(text), std::move(value), line}); }

  void run() {
    bool strip_next = false;  // a "-" closed the previous tag
    while (pos < src.size()) {
      size_t open = src.find('{', pos);
      while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' &&
             src[open + 1] != '#')
        open = src.find('{', open + 1);
      if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
      std::string text = src.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
      if (strip_next) {
        size_t k = 0;
        while (k < text.size() && is_space(text[k])) ++k;
        text.erase(0, k);
      }
      if (open == std::string::npos) {
        if (!text.empty()) push(tok::text, text);
        advance(src.size() - pos);
        return;
      }
      char kind = src[open + 1];
      char mod = open + 2 < src.size() ? src[open + 2] : '\0';
      if (mod == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (kind != '{' && mod != '+' && opt.lstrip_blocks) {
        size_t nl = text.rfind('\n');
        size_t from = nl == std::string::npos ? 0 : nl + 1;
        bool line_start = nl != std::string::npos || pos == 0 || src[pos - 1] == '\n';
        bool blank = true;
        for (size_t k = from; k < text.size(); ++k) blank = blank && (text[k] == ' ' || text[k] == '\t');
        if (blank && line_start) text.erase(from);
      }
      if (!text.empty()) push(tok::text, text);
      advance(open - pos);
      advance((mod == '-' || mod == '+') ? 3 : 2);
      bool strip_after = false;
      if (kind == '#') {
        size_t close = src.find("#}", pos);
        if (close == std::string::npos) fail("unclosed comment");
        strip_after = close > pos && src[close - 1] == '-';
        advance(close + 2 - pos);
      } else {
        push(kind == '{' ? tok::var_begin : tok::block_begin, "");
        strip_after = lex_tag(kind == '{' ? "}}" : "%}");
        push(kind == '{' ? tok::var_end : tok::block_end, "");
      }
      strip_next = strip_after;
      if (!strip_after && kind != '{' && opt.trim_blocks) {
        if (starts("\r\n")) advance(2);
        else if (starts("\n")) advance(1);
      }
    }
  }

  // Lexes expression tokens up to the closing delimiter; returns whether it was "-" + delimiter.
  bool lex_tag(const char* close) {
    for (;;) {
      while (pos < src.size() && is_space(src[pos])) advance(1);
      if (pos >= src.size()) fail(std::string("missing '") + close + "'");
      if (src[pos] == '-' && src.compare(pos + 1, 2, close) == 0) { advance(3); return true; }
      if (src[pos] == '+' && src.compare(pos + 1, 2, close) == 0) { advance(3); return false; }
      if (starts(close)) { advance(2); return false; }
      char c = src[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos;
        while (e < src.size() && (std::isalnum(static_cast<unsigned char>(src[e])) || src[e] == '_')) ++e;
        push(tok::name, src.substr(pos, e - pos));
        advance(e - pos);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number();
      } else if (c == '\'' || c == '"') {
        lex_string(c);
      } else {
        static const char* const ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                          "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="};
        bool found = false;
        for (const char* op : ops) {
          if (starts(op)) {
            push(tok::op, op);
            advance(std::char_traits<char>::length(op));
            found = true;
            break;
          }
        }
        if (!found) fail(std::string("unexpected character '") + c + "'");
      }
    }
  }

  void lex_number() {
    size_t e = pos;
    bool is_float = false;
    while (e < src.size() && (std::isdigit(static_cast<unsigned char>(src[e])) || src[e] == '_')) ++e;
    if (e + 1 < src.size() && src[e] == '.' && std::isdigit(static_cast<unsigned char>(src[e + 1]))) {
      is_float = true;
      ++e;
      while (e < src.size() && std::isdigit(static_cast<unsigned char>(src[e]))) ++e;
    }
    std::string digits;
    for (size_t k = pos; k < e; ++k)
      if (src[k] != '_') digits += src[k];
    try {
      if (is_float) push(tok::number, digits, json(std::stod(digits)));
      else push(tok::integer, digits, json(std::stoll(digits)));
    } catch (const std::exception&) {
      fail("bad number '" + digits + "'");
    }
    advance(e - pos);
  }

  void lex_string(char quote) {
    std::string s;
    advance(1);
    while (pos < src.size() && src[pos] != quote) {
      char c = src[pos];
      if (c == '\\' && pos + 1 < src.size()) {
        char n = src[pos + 1];
        switch (n) {
          case 'n': s += '\n'; break;
          case 't': s += '\t'; break;
          case 'r': s += '\r'; break;
          case '\\': s += '\\'; break;
          case '\'': s += '\''; break;
          case '"': s += '"'; break;
          default: s += '\\'; s += n; break;
        }
        advance(2);
      } else {
        s += c;
        advance(1);
      }
    }
    if (pos >= src.size()) fail("unterminated string");
    advance(1);
    push(tok::string, s);
  }
};

}  // namespace

std::vector<token> lex(const std::string& source, const lex_options& options) {
  lexer l(source, options);
  l.run();
  l.push(tok::end, "");
  return std::move(l.out);
}

}  // namespace troupe::jinja
