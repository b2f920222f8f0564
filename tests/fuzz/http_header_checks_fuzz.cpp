// Fuzzes the request-header checks (net/http_request_checks.h) with hostile Host, Origin,
// Transfer-Encoding and Content-Type values: input lines are the header values in that order,
// then the bound address. Checks invariants the listener relies on, besides not crashing.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "net/http_request_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  std::vector<std::string> f;
  std::stringstream ss(std::string(reinterpret_cast<const char*>(data), size));
  for (std::string line; std::getline(ss, line);) f.push_back(line);
  f.resize(5);
  const std::string& host = f[0];
  const std::string& origin = f[1];
  const origin_policy loopback{"127.0.0.1", {}, {}};
  const origin_policy p{f[4], {f[2]}, {f[3]}};

  const std::string h = host_of(host);
  // Loopback names are always served by a loopback server; a foreign name never is.
  if (is_loopback_host(h) && !host_allowed(loopback, host)) std::abort();
  if (!h.empty() && !is_loopback_host(h) && h != "127.0.0.1" && host_allowed(loopback, host)) std::abort();
  // An origin is allowed only with an http(s) scheme (or by the lists).
  std::string lower_origin = origin;
  for (char& c : lower_origin) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (origin_allowed(loopback, origin, host) && lower_origin.find("http") == std::string::npos) std::abort();
  (void)host_allowed(p, host);
  (void)origin_allowed(p, origin, host);
  (void)framing_error(11, f[2], f[3].size() % 3);
  (void)is_json_content_type(f[3]);
  return 0;
}
