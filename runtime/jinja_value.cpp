// Jinja values on nlohmann::json with Python semantics: truthiness, str(), HF's tojson, operators,
// and the filters, tests and methods chat templates use. Object keys iterate in sorted order.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "runtime/utf8.h"
#include "runtime/jinja_ast.h"

namespace troupe::jinja {

json undefined() { return json(json::value_t::discarded); }
bool is_undefined(const json& v) { return v.is_discarded(); }

bool truthy(const json& v) {
  switch (v.type()) {
    case json::value_t::boolean: return v.get<bool>();
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return v.get<int64_t>() != 0;
    case json::value_t::number_float: return v.get<double>() != 0.0;
    case json::value_t::string: return !v.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object: return !v.empty();
    default: return false;  // null, undefined
  }
}

namespace {

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  std::string s = json(d).dump();  // shortest round-trip form
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string py_repr(const json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    std::string out(1, q);
    for (char c : s) {
      if (c == q || c == '\\') { out += '\\'; out += c; }
      else if (c == '\n') out += "\\n";
      else if (c == '\t') out += "\\t";
      else if (c == '\r') out += "\\r";
      else out += c;
    }
    return out + q;
  }
  return to_str(v);
}

bool is_py_space(uint32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

std::string strip(const std::string& s, bool left, bool right, const json& chars) {
  std::vector<uint32_t> cp = codepoints(s);
  std::vector<uint32_t> set = chars.is_string() ? codepoints(chars.get<std::string>()) : std::vector<uint32_t>{};
  auto strippable = [&](uint32_t c) {
    return chars.is_string() ? std::find(set.begin(), set.end(), c) != set.end() : is_py_space(c);
  };
  size_t b = 0, e = cp.size();
  if (left) while (b < e && strippable(cp[b])) ++b;
  if (right) while (e > b && strippable(cp[e - 1])) --e;
  return from_codepoints(cp, b, e);
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

json items_of(const json& v) {
  json out = json::array();
  if (v.is_object())
    for (auto it = v.begin(); it != v.end(); ++it) out.push_back(json::array({it.key(), it.value()}));
  else if (!is_undefined(v) && !v.is_null()) throw error("items() needs a mapping");
  return out;
}

// Elements of an iterable as a list (strings give characters, mappings give keys).
json as_list(const json& v) {
  if (v.is_array()) return v;
  json out = json::array();
  if (v.is_object()) for (auto it = v.begin(); it != v.end(); ++it) out.push_back(it.key());
  else if (v.is_string()) {
    auto cp = codepoints(v.get<std::string>());
    for (size_t i = 0; i < cp.size(); ++i) out.push_back(from_codepoints(cp, i, i + 1));
  } else if (!is_undefined(v)) throw error("value is not iterable");
  return out;
}

json attribute_of(const json& v, const std::string& name) {
  if (v.is_object() && v.contains(name)) return v[name];
  return undefined();
}

json select_items(const json& seq, const std::vector<json>& args, bool by_attr, bool keep) {
  json out = json::array();
  size_t first = by_attr ? 1 : 0;
  if (by_attr && (args.empty() || !args[0].is_string())) throw error("selectattr needs an attribute name");
  std::string test = args.size() > first ? args[first].get<std::string>() : std::string();
  std::vector<json> rest(args.begin() + std::min(args.size(), first + 1), args.end());
  for (const json& item : as_list(seq)) {
    json subject = by_attr ? attribute_of(item, args[0].get<std::string>()) : item;
    bool ok = test.empty() ? truthy(subject) : apply_test(test, subject, rest);
    if (ok == keep) out.push_back(item);
  }
  return out;
}

int64_t to_int(const json& v) {
  if (v.is_number()) return static_cast<int64_t>(v.get<double>());
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_string()) { try { return std::stoll(v.get<std::string>()); } catch (...) { return 0; } }
  return 0;
}

}  // namespace

std::vector<uint32_t> codepoints(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + n > s.size()) n = 1;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(n == 1 && c >= 0x80 ? 0xDC00 + c : cp);  // stray bytes survive as low surrogates
    i += n;
  }
  return out;
}

std::string from_codepoints(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string s;
  for (size_t i = begin; i < end && i < cps.size(); ++i) {
    uint32_t cp = cps[i];
    if (cp >= 0xDC80 && cp <= 0xDCFF) s += static_cast<char>(cp - 0xDC00);
    else append_utf8(s, cp);
  }
  return s;
}

std::string to_str(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return v.get<std::string>();
    case json::value_t::boolean: return v.get<bool>() ? "True" : "False";
    case json::value_t::null: return "None";
    case json::value_t::discarded: return "";
    case json::value_t::number_float: return float_repr(v.get<double>());
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return v.dump();
    case json::value_t::array: {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + py_repr(v[i]);
      return s + "]";
    }
    case json::value_t::object: {
      std::string s = "{";
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it, first = false)
        s += (first ? "" : ", ") + py_repr(it.key()) + ": " + py_repr(it.value());
      return s + "}";
    }
    default: return "";
  }
}

std::string to_json(const json& v, int indent) {
  // json.dumps: ", " and ": " without indent; "," + newline and ": " with it.
  std::string pad = indent > 0 ? std::string(indent, ' ') : "";
  std::function<void(const json&, int, std::string&)> emit = [&](const json& x, int level, std::string& out) {
    auto newline = [&](int l) {
      if (indent > 0) { out += '\n'; for (int i = 0; i < l; ++i) out += pad; }
    };
    if (x.is_array() || x.is_object()) {
      if (x.empty()) { out += x.is_array() ? "[]" : "{}"; return; }
      out += x.is_array() ? '[' : '{';
      bool first = true;
      for (auto it = x.begin(); it != x.end(); ++it) {
        if (!first) out += indent > 0 ? "," : ", ";
        first = false;
        newline(level + 1);
        if (x.is_object()) out += json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace) + ": ";
        emit(it.value(), level + 1, out);
      }
      newline(level);
      out += x.is_array() ? ']' : '}';
    } else if (x.is_number_float()) {
      out += float_repr(x.get<double>());
    } else if (is_undefined(x)) {
      throw error("tojson: value is undefined");
    } else {
      out += x.dump(-1, ' ', false, json::error_handler_t::replace);
    }
  };
  std::string out;
  emit(v, 0, out);
  return out;
}

json apply_filter(const std::string& f, const json& v, const std::vector<json>& a,
                  const std::map<std::string, json>& kw) {
  auto arg = [&](size_t i, const char* name) -> json {
    if (i < a.size()) return a[i];
    auto it = kw.find(name);
    return it == kw.end() ? undefined() : it->second;
  };
  if (f == "trim") return strip(to_str(v), true, true, arg(0, "chars"));
  if (f == "length" || f == "count") {
    if (v.is_string()) return codepoints(v.get<std::string>()).size();
    if (v.is_array() || v.is_object()) return v.size();
    if (is_undefined(v)) return 0;
    throw error("length of a value that has none");
  }
  if (f == "tojson") { json ind = arg(0, "indent"); return to_json(v, ind.is_number() ? ind.get<int>() : 0); }
  if (f == "upper" || f == "lower") {
    std::string s = to_str(v);
    for (char& c : s) c = f == "upper" ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                                       : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  if (f == "capitalize" || f == "title") return call_method(json(to_str(v)), f, {});
  if (f == "default" || f == "d") {
    bool boolean = truthy(arg(1, "boolean"));
    if (is_undefined(v) || (boolean && !truthy(v))) { json d = arg(0, "default_value"); return is_undefined(d) ? json("") : d; }
    return v;
  }
  if (f == "first" || f == "last") {
    json l = as_list(v);
    if (l.empty()) return undefined();
    return f == "first" ? l.front() : l.back();
  }
  if (f == "join") {
    json attr = arg(1, "attribute");
    std::string sep = is_undefined(arg(0, "d")) ? "" : to_str(arg(0, "d")), out;
    bool first = true;
    for (const json& x : as_list(v)) {
      out += (first ? "" : sep) + to_str(attr.is_string() ? attribute_of(x, attr.get<std::string>()) : x);
      first = false;
    }
    return out;
  }
  if (f == "replace") return replace_all(to_str(v), to_str(arg(0, "old")), to_str(arg(1, "new")));
  if (f == "items") return items_of(v);
  if (f == "string" || f == "safe" || f == "e" || f == "escape") return to_str(v);
  if (f == "list") return as_list(v);
  if (f == "int") return to_int(v);
  if (f == "float") return v.is_number() ? v.get<double>() : static_cast<double>(to_int(v));
  if (f == "abs") return v.is_number_float() ? json(std::fabs(v.get<double>())) : json(std::llabs(to_int(v)));
  if (f == "select" || f == "reject") return select_items(v, a, false, f == "select");
  if (f == "selectattr" || f == "rejectattr") return select_items(v, a, true, f == "selectattr");
  if (f == "map") {
    json attr = arg(99, "attribute");
    json out = json::array();
    for (const json& x : as_list(v)) {
      if (attr.is_string()) out.push_back(attribute_of(x, attr.get<std::string>()));
      else if (!a.empty() && a[0].is_string()) out.push_back(apply_filter(a[0].get<std::string>(), x, {}, {}));
      else throw error("map needs attribute= or a filter name");
    }
    return out;
  }
  if (f == "unique") {
    json out = json::array();
    for (const json& x : as_list(v))
      if (std::find(out.begin(), out.end(), x) == out.end()) out.push_back(x);
    return out;
  }
  if (f == "reverse") {
    if (v.is_string()) { auto cp = codepoints(v.get<std::string>()); std::reverse(cp.begin(), cp.end()); return from_codepoints(cp, 0, cp.size()); }
    json l = as_list(v);
    std::reverse(l.begin(), l.end());
    return l;
  }
  if (f == "dictsort") return items_of(v);  // nlohmann objects are already sorted by key
  throw error("unknown filter '" + f + "'");
}

bool apply_test(const std::string& t, const json& v, const std::vector<json>& a) {
  if (t == "defined") return !is_undefined(v);
  if (t == "undefined") return is_undefined(v);
  if (t == "none") return v.is_null();
  if (t == "string") return v.is_string();
  if (t == "number") return v.is_number();
  if (t == "integer") return v.is_number_integer();
  if (t == "float") return v.is_number_float();
  if (t == "boolean") return v.is_boolean();
  if (t == "true") return v.is_boolean() && v.get<bool>();
  if (t == "false") return v.is_boolean() && !v.get<bool>();
  if (t == "mapping") return v.is_object();
  if (t == "iterable") return v.is_array() || v.is_object() || v.is_string();
  if (t == "sequence") return v.is_array() || v.is_string() || v.is_object();
  if (t == "callable") return false;
  if (t == "odd" || t == "even") return v.is_number_integer() && (v.get<int64_t>() % 2 != 0) == (t == "odd");
  if (t == "lower" || t == "upper") {
    if (!v.is_string()) return false;
    std::string s = v.get<std::string>();
    return apply_filter(t, v, {}, {}).get<std::string>() == s;
  }
  if (a.empty()) throw error("test '" + t + "' needs an argument");
  if (t == "equalto" || t == "eq" || t == "==" || t == "sameas") return truthy(binary_op("==", v, a[0]));
  if (t == "ne" || t == "!=") return !truthy(binary_op("==", v, a[0]));
  if (t == "in") return truthy(binary_op("in", v, a[0]));
  if (t == "divisibleby") return to_int(a[0]) != 0 && to_int(v) % to_int(a[0]) == 0;
  if (t == "gt" || t == "lt" || t == "ge" || t == "le") {
    const char* op = t == "gt" ? ">" : t == "lt" ? "<" : t == "ge" ? ">=" : "<=";
    return truthy(binary_op(op, v, a[0]));
  }
  throw error("unknown test '" + t + "'");
}

json call_method(const json& v, const std::string& m, const std::vector<json>& a) {
  auto arg = [&](size_t i) { return i < a.size() ? a[i] : undefined(); };
  if (v.is_object()) {
    if (m == "items") return items_of(v);
    if (m == "keys") return as_list(v);
    if (m == "values") { json out = json::array(); for (const auto& x : v) out.push_back(x); return out; }
    if (m == "get") { json r = attribute_of(v, to_str(arg(0))); return is_undefined(r) ? (a.size() > 1 ? a[1] : json(nullptr)) : r; }
  }
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (m == "strip" || m == "lstrip" || m == "rstrip") return strip(s, m != "rstrip", m != "lstrip", arg(0));
    if (m == "upper" || m == "lower") return apply_filter(m, v, {}, {});
    if (m == "startswith") return s.rfind(to_str(arg(0)), 0) == 0;
    if (m == "endswith") { std::string x = to_str(arg(0)); return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0; }
    if (m == "replace") return replace_all(s, to_str(arg(0)), to_str(arg(1)));
    if (m == "capitalize" || m == "title") {
      std::string out = s;
      bool start = true;
      for (char& c : out) {
        auto u = static_cast<unsigned char>(c);
        c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
        start = m == "title" ? !std::isalpha(u) : false;
      }
      return out;
    }
    if (m == "split") {
      json out = json::array();
      if (a.empty() || a[0].is_null()) {
        size_t i = 0;
        while (i < s.size()) {
          while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
          size_t b = i;
          while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
          if (i > b) out.push_back(s.substr(b, i - b));
        }
        return out;
      }
      std::string sep = to_str(a[0]);
      if (sep.empty()) throw error("split: empty separator");
      size_t b = 0, e;
      while ((e = s.find(sep, b)) != std::string::npos) { out.push_back(s.substr(b, e - b)); b = e + sep.size(); }
      out.push_back(s.substr(b));
      return out;
    }
    if (m == "find") { size_t p = s.find(to_str(arg(0))); return p == std::string::npos ? -1 : static_cast<int64_t>(codepoints(s.substr(0, p)).size()); }
  }
  throw error("unknown method '" + m + "'");
}

json binary_op(const std::string& op, const json& a, const json& b) {
  if (op == "~") return to_str(a) + to_str(b);
  if (op == "==") return !is_undefined(a) && !is_undefined(b) ? json(a == b) : json(is_undefined(a) && is_undefined(b));
  if (op == "!=") return !truthy(binary_op("==", a, b));
  if (op == "in" || op == "not in") {
    bool in = false;
    if (b.is_string() && a.is_string()) in = b.get<std::string>().find(a.get<std::string>()) != std::string::npos;
    else if (b.is_array()) in = std::find(b.begin(), b.end(), a) != b.end();
    else if (b.is_object()) in = a.is_string() && b.contains(a.get<std::string>());
    else if (!is_undefined(b)) throw error("'in' needs a string, list or mapping on the right");
    return op == "in" ? in : !in;
  }
  if (op == "+" && a.is_string() && b.is_string()) return a.get<std::string>() + b.get<std::string>();
  if (op == "+" && a.is_array() && b.is_array()) { json r = a; r.insert(r.end(), b.begin(), b.end()); return r; }
  if (op == "*" && a.is_string() && b.is_number_integer()) {
    std::string r;
    for (int64_t i = 0; i < std::min<int64_t>(b.get<int64_t>(), 1 << 20); ++i) r += a.get<std::string>();
    return r;
  }
  bool numbers = (a.is_number() || a.is_boolean()) && (b.is_number() || b.is_boolean());
  if ((op == "<" || op == ">" || op == "<=" || op == ">=") && a.is_string() && b.is_string()) {
    int c = a.get<std::string>().compare(b.get<std::string>());
    return op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
  }
  if (!numbers) throw error("unsupported operand types for '" + op + "': " + std::string(a.type_name()) + " and " + b.type_name());
  auto num = [](const json& x) { return x.is_boolean() ? (x.get<bool>() ? 1.0 : 0.0) : x.get<double>(); };
  auto inum = [](const json& x) { return x.is_boolean() ? (x.get<bool>() ? 1 : 0) : x.get<int64_t>(); };
  bool ints = !a.is_number_float() && !b.is_number_float();
  double x = num(a), y = num(b);
  if (op == "<") return x < y;
  if (op == ">") return x > y;
  if (op == "<=") return x <= y;
  if (op == ">=") return x >= y;
  if (op == "+") return ints ? json(inum(a) + inum(b)) : json(x + y);
  if (op == "-") return ints ? json(inum(a) - inum(b)) : json(x - y);
  if (op == "*") return ints ? json(inum(a) * inum(b)) : json(x * y);
  if (op == "**") return ints && inum(b) >= 0 ? json(static_cast<int64_t>(std::pow(x, y))) : json(std::pow(x, y));
  if (y == 0) throw error("division by zero");
  if (op == "/") return x / y;
  if (op == "//") return ints ? json(static_cast<int64_t>(std::floor(x / y))) : json(std::floor(x / y));
  if (op == "%") {
    if (ints) { int64_t r = inum(a) % inum(b); if (r != 0 && ((r < 0) != (inum(b) < 0))) r += inum(b); return r; }
    return x - y * std::floor(x / y);
  }
  throw error("unknown operator '" + op + "'");
}

}  // namespace troupe::jinja
