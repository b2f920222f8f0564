// Raw JSON slices (see json_raw.h). The scanners trust their input to be valid JSON, except that
// json_value_end reports a value the text cuts off.
#include "net/json_raw.h"

namespace troupe {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

size_t skip_ws(std::string_view s, size_t p) {
  while (p < s.size() && is_ws(s[p])) ++p;
  return p;
}

// The end of the string that opens at s[p] (past its closing quote), or npos.
size_t string_end(std::string_view s, size_t p) {
  for (size_t i = p + 1; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

}  // namespace

size_t json_value_end(std::string_view s, size_t start) {
  if (start >= s.size()) return std::string_view::npos;
  const char c = s[start];
  if (c == '"') return string_end(s, start);
  if (c != '{' && c != '[') {
    size_t p = start;
    while (p < s.size() && !is_ws(s[p]) && s[p] != ',' && s[p] != ']' && s[p] != '}') ++p;
    return p;
  }
  int32_t depth = 0;
  for (size_t i = start; i < s.size(); ++i) {
    const char x = s[i];
    if (x == '"') {
      const size_t e = string_end(s, i);
      if (e == std::string_view::npos) return e;
      i = e - 1;
    } else if (x == '{' || x == '[') {
      ++depth;
    } else if ((x == '}' || x == ']') && --depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

std::optional<std::string_view> json_raw_member(std::string_view object, std::string_view key) {
  size_t p = skip_ws(object, 0);
  if (p >= object.size() || object[p] != '{') return std::nullopt;
  p = skip_ws(object, p + 1);
  while (p < object.size() && object[p] == '"') {
    const size_t key_end = string_end(object, p);
    if (key_end == std::string_view::npos) return std::nullopt;
    const std::string_view k = object.substr(p + 1, key_end - p - 2);
    p = skip_ws(object, key_end);
    if (p >= object.size() || object[p] != ':') return std::nullopt;
    p = skip_ws(object, p + 1);
    const size_t v_end = json_value_end(object, p);
    if (v_end == std::string_view::npos) return std::nullopt;
    if (k == key) return object.substr(p, v_end - p);
    p = skip_ws(object, v_end);
    if (p < object.size() && object[p] == ',') p = skip_ws(object, p + 1);
  }
  return std::nullopt;
}

std::vector<std::string_view> json_raw_elements(std::string_view array) {
  std::vector<std::string_view> out;
  size_t p = skip_ws(array, 0);
  if (p >= array.size() || array[p] != '[') return out;
  p = skip_ws(array, p + 1);
  while (p < array.size() && array[p] != ']') {
    const size_t e = json_value_end(array, p);
    if (e == std::string_view::npos || e == p) break;
    out.push_back(array.substr(p, e - p));
    p = skip_ws(array, e);
    if (p < array.size() && array[p] == ',') p = skip_ws(array, p + 1);
  }
  return out;
}

void json_compact_append(std::string_view text, std::string& out, bool& in_string, bool& escape) {
  for (const char c : text) {
    if (in_string) {
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (is_ws(c)) {
      continue;
    }
    out += c;
  }
}

std::string json_compact(std::string_view text) {
  std::string out;
  bool in_string = false, escape = false;
  json_compact_append(text, out, in_string, escape);
  return out;
}

}  // namespace troupe
