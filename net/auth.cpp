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

}  // namespace troupe
