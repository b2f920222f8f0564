// Bearer-token authentication (see auth.h).
#include "net/auth.h"

#include <cctype>
#include <cstdint>

namespace troupe {

bool constant_time_equal(std::string_view expected, std::string_view given) {
  // Walk the expected key whatever the given length, so timing reveals nothing of its content.
  uint8_t diff = expected.size() == given.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const uint8_t g = i < given.size() ? static_cast<uint8_t>(given[i]) : 0;
    diff |= static_cast<uint8_t>(static_cast<uint8_t>(expected[i]) ^ g);
  }
  return diff == 0;
}

bool authorized(std::string_view api_key, std::string_view header) {
  if (api_key.empty()) return true;
  constexpr std::string_view scheme = "bearer ";
  if (header.size() < scheme.size()) return false;
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return false;
  }
  std::string_view token = header.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  return constant_time_equal(api_key, token);
}

namespace {
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string bearer_from_query(std::string_view target) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    constexpr std::string_view name = "api_key=";
    if (!param.starts_with(name)) continue;
    std::string key;
    for (size_t i = name.size(); i < param.size(); ++i) {
      if (param[i] == '%' && i + 2 < param.size() && hex_digit(param[i + 1]) >= 0 && hex_digit(param[i + 2]) >= 0) {
        key.push_back(static_cast<char>(hex_digit(param[i + 1]) * 16 + hex_digit(param[i + 2])));
        i += 2;
      } else {
        key.push_back(param[i] == '+' ? ' ' : param[i]);
      }
    }
    return "Bearer " + key;
  }
  return {};
}

}  // namespace troupe
