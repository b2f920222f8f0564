// Pythonic tool calls (see pythonic_calls.h): a recursive-descent reader of the Python literal
// subset the format uses. Model output is untrusted: nesting is bounded and nothing throws.
#include "net/pythonic_calls.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "net/tool_request.h"

namespace troupe {

bool pythonic_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

namespace {

using ojson = nlohmann::ordered_json;

constexpr int32_t k_max_depth = 64;

class reader {
 public:
  explicit reader(std::string_view s) : s_(s) {}

  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\r' || s_[p_] == '\t')) ++p_;
  }
  bool eat(char c) {
    ws();
    if (p_ < s_.size() && s_[p_] == c) return ++p_, true;
    return false;
  }
  bool at_end() {
    ws();
    return p_ >= s_.size();
  }
  bool starts(std::string_view l) const { return s_.substr(p_, l.size()) == l; }
  void skip(size_t n) { p_ += n; }

  size_t pos() const { return p_; }

  // A function or keyword name: letters, digits, '_', '-', '.' (OpenAI's names allow '-').
  bool name(std::string& out) {
    ws();
    const size_t start = p_;
    while (p_ < s_.size() && pythonic_name_char(s_[p_])) ++p_;
    out = std::string(s_.substr(start, p_ - start));
    return !out.empty() && !std::isdigit(static_cast<unsigned char>(out[0]));
  }

  bool value(ojson& out, int32_t depth) {
    if (depth > k_max_depth) return false;
    ws();
    if (p_ >= s_.size()) return false;
    const char c = s_[p_];
    if (c == '"' || c == '\'') return string(out);
    if (c == '[' || c == '(') return list(out, depth, c == '[' ? ']' : ')');
    if (c == '{') return dict(out, depth);
    for (auto [word, v] : {std::pair<std::string_view, ojson>{"True", true}, {"False", false}, {"None", nullptr},
                           {"true", true}, {"false", false}, {"null", nullptr}}) {
      if (starts(word)) {
        p_ += word.size();
        out = v;
        return true;
      }
    }
    return number(out);
  }

 private:
  bool string(ojson& out) {
    const char q = s_[p_++];
    std::string v;
    while (p_ < s_.size() && s_[p_] != q) {
      char c = s_[p_++];
      if (c == '\n') return false;
      if (c == '\\') {
        if (p_ >= s_.size()) return false;
        c = s_[p_++];
        switch (c) {
          case 'n': v += '\n'; break;
          case 't': v += '\t'; break;
          case 'r': v += '\r'; break;
          case 'u': {
            if (p_ + 4 > s_.size()) return false;
            unsigned cp = 0;
            for (int i = 0; i < 4; ++i) {
              const char h = s_[p_++];
              if (!std::isxdigit(static_cast<unsigned char>(h))) return false;
              cp = cp * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 0x20) - 'a' + 10);
            }
            if (cp >= 0xD800 && cp < 0xE000) return false;  // surrogates: not in this subset
            if (cp < 0x80) {
              v += static_cast<char>(cp);
            } else if (cp < 0x800) {
              v += static_cast<char>(0xC0 | (cp >> 6));
              v += static_cast<char>(0x80 | (cp & 0x3F));
            } else {
              v += static_cast<char>(0xE0 | (cp >> 12));
              v += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
              v += static_cast<char>(0x80 | (cp & 0x3F));
            }
            break;
          }
          default: v += c;  // \\ \' \" and the rest as themselves
        }
      } else {
        v += c;
      }
    }
    if (p_ >= s_.size()) return false;
    ++p_;
    out = std::move(v);
    return true;
  }

  bool number(ojson& out) {
    const size_t start = p_;
    if (p_ < s_.size() && (s_[p_] == '-' || s_[p_] == '+')) ++p_;
    while (p_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[p_])) || s_[p_] == '.' || s_[p_] == 'e' ||
                              s_[p_] == 'E' || ((s_[p_] == '-' || s_[p_] == '+') && p_ > start && (s_[p_ - 1] | 0x20) == 'e'))) {
      ++p_;
    }
    std::string text(s_.substr(start, p_ - start));
    if (!text.empty() && text[0] == '+') text.erase(0, 1);
    if (!text.empty() && text.back() == '.') text += '0';  // Python's "1." is JSON's 1.0
    if (text.empty()) return false;
    out = ojson::parse(text, nullptr, false);
    return out.is_number();
  }

  bool list(ojson& out, int32_t depth, char close) {
    ++p_;
    out = ojson::array();
    while (!eat(close)) {
      ojson v;
      if (!value(v, depth + 1)) return false;
      out.push_back(std::move(v));
      if (!eat(',')) return eat(close);
    }
    return true;
  }

  bool dict(ojson& out, int32_t depth) {
    ++p_;
    out = ojson::object();
    while (!eat('}')) {
      ojson k, v;
      if (!value(k, depth + 1) || !k.is_string() || !eat(':') || !value(v, depth + 1)) return false;
      out[k.get<std::string>()] = std::move(v);
      if (!eat(',')) return eat('}');
    }
    return true;
  }

  std::string_view s_;
  size_t p_ = 0;
};

tool_output as_text(std::string_view text) {
  tool_output out;
  out.content = std::string(text);
  return out;
}

// A GBNF literal for `s`.
std::string gbnf_lit(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// The Python spelling of a JSON scalar (enum and const values).
std::string python_literal(const ojson& v) {
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_null()) return "None";
  return v.dump(-1, ' ', false, ojson::error_handler_t::replace);  // strings: "..." is Python too
}

// The GBNF of one argument's value, from its schema.
std::string value_rule(const ojson& s) {
  if (!s.is_object()) return "pyval";
  std::vector<ojson> options;
  if (s.contains("const")) options.push_back(s["const"]);
  if (s.contains("enum") && s["enum"].is_array()) options.assign(s["enum"].begin(), s["enum"].end());
  if (!options.empty()) {
    std::string alt;
    for (const ojson& o : options) {
      if (o.is_object() || o.is_array()) return "pyval";
      alt += (alt.empty() ? "" : " | ") + gbnf_lit(python_literal(o));
    }
    return "(" + alt + ")";
  }
  const std::string type = s.contains("type") && s["type"].is_string() ? s["type"].get<std::string>() : "";
  if (type == "string") return "pystr";
  if (type == "integer") return "pyint";
  if (type == "number") return "pynum";
  if (type == "boolean") return "(\"True\" | \"False\")";
  if (type == "null") return "\"None\"";
  return "pyval";
}

bool keyword_name(const std::string& n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

}  // namespace

std::string pythonic_call_grammar(const tool_request& t) {
  std::string calls, rules;
  int32_t i = 0;
  for (const tool_def& d : t.tools) {
    if (t.choice == tool_choice_mode::named && d.name != t.named) continue;
    std::string args;
    const ojson& p = d.parameters;
    if (p.is_object() && p.contains("properties") && p["properties"].is_object() && p.contains("required") &&
        p["required"].is_array()) {
      for (const auto& [name, schema] : p["properties"].items()) {
        if (std::find(p["required"].begin(), p["required"].end(), ojson(name)) == p["required"].end()) continue;
        if (!keyword_name(name)) return {};
        args += (args.empty() ? "" : " \", \" ") + gbnf_lit(name + "=") + " " + value_rule(schema);
      }
    }
    const std::string rule = "call" + std::to_string(i++);
    rules += rule + " ::= " + gbnf_lit(d.name + "(") + " " + args + " \")\"\n";
    calls += (calls.empty() ? "" : " | ") + rule;
  }
  const bool many = t.parallel && t.choice != tool_choice_mode::named;
  return "root ::= \"[\" call" + std::string(many ? " (\", \" call){0,15}" : "") + " \"]\"\n" +
         "call ::= " + calls + "\n" + rules +
         "pystr ::= \"\\\"\" ([^\"\\\\\\n] | \"\\\\\" [\"\\\\nt])* \"\\\"\"\n"
         "pyint ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n"
         "pynum ::= pyint (\".\" [0-9]{1,15})?\n"
         "pyval ::= pystr | pynum | \"True\" | \"False\" | \"None\" | \"[\" (pyval (\", \" pyval)*)? \"]\" | "
         "\"{\" (pystr \": \" pyval (\", \" pystr \": \" pyval)*)? \"}\"\n";
}

std::optional<std::pair<std::string, size_t>> pythonic_literal_json(std::string_view s) {
  reader r(s);
  ojson v;
  if (!r.value(v, 1)) return std::nullopt;
  return std::pair{v.dump(-1, ' ', false, ojson::error_handler_t::replace), r.pos()};
}

tool_output parse_pythonic_calls(std::string_view text, const std::vector<std::string>& known) {
  reader r(text);
  r.ws();
  if (r.starts("<|python_tag|>")) r.skip(14);
  if (!r.eat('[')) return as_text(text);
  tool_output out;
  do {
    parsed_tool_call call;
    if (!r.name(call.name) || std::find(known.begin(), known.end(), call.name) == known.end()) return as_text(text);
    if (!r.eat('(')) return as_text(text);
    ojson args = ojson::object();
    while (!r.eat(')')) {
      std::string key;
      ojson v;
      if (!r.name(key) || !r.eat('=') || !r.value(v, 1) || args.contains(key)) return as_text(text);
      args[key] = std::move(v);
      if (!r.eat(',')) {
        if (!r.eat(')')) return as_text(text);
        break;
      }
    }
    call.arguments = args.dump(-1, ' ', false, ojson::error_handler_t::replace);
    out.calls.push_back(std::move(call));
  } while (r.eat(','));
  if (!r.eat(']') || !r.at_end()) return as_text(text);
  out.is_calls = true;
  return out;
}

}  // namespace troupe
