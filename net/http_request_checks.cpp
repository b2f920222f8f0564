// Request-header checks (see http_request_checks.h). Pure string work, no Beast.
#include "net/http_request_checks.h"

#include <algorithm>
#include <cctype>

namespace troupe {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool contains(const std::vector<std::string>& list, std::string_view value) {
  const std::string v = lower(value);
  return std::any_of(list.begin(), list.end(), [&](const std::string& x) { return lower(trim(x)) == v; });
}

bool is_wildcard_bind(std::string_view host) { return host == "0.0.0.0" || host == "::" || host == "[::]"; }

// The bound address as it appears in a Host header (IPv6 literals bracketed).
std::string bound_as_host(std::string_view bound) {
  if (bound.find(':') != std::string_view::npos && bound.front() != '[') return "[" + lower(bound) + "]";
  return lower(bound);
}

}  // namespace

std::optional<api_error> framing_error(unsigned version, std::optional<std::string_view> transfer_encoding,
                                       std::size_t num_host_fields) {
  if (transfer_encoding && lower(trim(*transfer_encoding)) != "chunked") {
    return api_error{501, "unsupported Transfer-Encoding '" + std::string(transfer_encoding->substr(0, 64)) +
                              "': only chunked is accepted",
                     "invalid_request_error", {}, "unsupported_transfer_encoding"};
  }
  if (version >= 11 && num_host_fields != 1) {
    return api_error{400,
                     num_host_fields == 0 ? "HTTP/1.1 request without a Host header"
                                          : "HTTP request with more than one Host header",
                     "invalid_request_error", {}, "bad_host"};
  }
  if (num_host_fields > 1) {
    return api_error{400, "HTTP request with more than one Host header", "invalid_request_error", {}, "bad_host"};
  }
  return std::nullopt;
}

std::string host_of(std::string_view authority) {
  authority = trim(authority);
  if (authority.empty()) return {};
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return {};
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return {};
    return lower(authority.substr(0, close + 1));
  }
  const size_t colon = authority.find(':');
  if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos) return {};
  return lower(authority.substr(0, colon));
}

bool is_loopback_host(std::string_view host) {
  const std::string h = lower(host);
  return h == "localhost" || h == "127.0.0.1" || h == "[::1]";
}

bool host_allowed(const origin_policy& p, std::string_view host_header) {
  if (contains(p.allowed_hosts, "*")) return true;
  if (is_wildcard_bind(p.bound_host) && p.allowed_hosts.empty()) return true;
  const std::string host = host_of(host_header);
  if (host.empty()) return false;
  return is_loopback_host(host) || host == bound_as_host(p.bound_host) || contains(p.allowed_hosts, host);
}

bool origin_allowed(const origin_policy& p, std::string_view origin, std::string_view host_header) {
  origin = trim(origin);
  if (contains(p.allowed_origins, "*") || contains(p.allowed_origins, origin)) return true;
  const std::string o = lower(origin);
  std::string_view authority;
  if (o.rfind("http://", 0) == 0) {
    authority = std::string_view(o).substr(7);
  } else if (o.rfind("https://", 0) == 0) {
    authority = std::string_view(o).substr(8);
  } else {
    return false;  // "null" (sandboxed pages, files) and other schemes
  }
  if (authority.empty() || authority.find('/') != std::string_view::npos) return false;
  if (authority == lower(trim(host_header))) return true;  // same origin
  const std::string host = host_of(authority);
  return !host.empty() && is_loopback_host(host);
}

bool is_json_content_type(std::string_view content_type) {
  const std::string_view media = trim(content_type.substr(0, content_type.find(';')));
  return lower(media) == "application/json";
}

}  // namespace troupe
