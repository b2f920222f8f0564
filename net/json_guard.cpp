// Untrusted-JSON bounds (see json_guard.h). Both functions are iterative and linear in their input.
#include "net/json_guard.h"

namespace troupe {

namespace {
constexpr size_t k_max_quoted_chars = 80;  // of a string value, plus quotes and an ellipsis
}  // namespace

int32_t json_nesting_depth(std::string_view text, int32_t limit) {
  int32_t depth = 0;
  int32_t deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > deepest) deepest = depth;
        if (deepest > limit) return limit + 1;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default: break;
    }
  }
  return deepest;
}

std::string describe_json(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::number_integer: return std::to_string(v.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return std::to_string(v.get<uint64_t>());
    case nlohmann::json::value_t::number_float: return v.dump();  // a scalar: bounded length
    case nlohmann::json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      // Cut at a UTF-8 boundary so the error body stays valid JSON text.
      size_t n = std::min(s.size(), k_max_quoted_chars);
      while (n < s.size() && n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
      std::string out = "\"";
      out.append(s, 0, n);
      if (n < s.size()) out += "...";
      out += '"';
      return out;
    }
    case nlohmann::json::value_t::array: return "a list of " + std::to_string(v.size()) + " items";
    case nlohmann::json::value_t::object: return "an object";
    default: return "a binary value";
  }
}

}  // namespace troupe
