// What the listener checks of a request header before routing it, as pure functions over header
// values (unit-tested without sockets): message framing (RFC 9112: Transfer-Encoding, Host), the
// Host allow-list against DNS rebinding, the Origin allow-list for browsers, JSON content types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/api_error.h"

namespace troupe {

// 501 for a transfer coding other than plain `chunked` (`gzip, chunked` included: bodies are never
// decoded, so they would be read as JSON in their compressed form); 400 for HTTP/1.1 without
// exactly one Host. `transfer_encoding` is the field's value, nullopt when absent.
std::optional<api_error> framing_error(unsigned version, std::optional<std::string_view> transfer_encoding,
                                       std::size_t num_host_fields);

// Who may talk to the server from a browser. Hosts and origins compare case-insensitively.
struct origin_policy {
  std::string bound_host;  // --host as given ("127.0.0.1", "0.0.0.0", "::", a name)
  std::vector<std::string> allowed_hosts;    // --allowed-hosts: extra Host names ("*": any)
  std::vector<std::string> allowed_origins;  // --allowed-origins: extra origins ("*": any)
};

// The host part of a Host header or authority ("example.com:80" -> "example.com", "[::1]:8000"
// -> "[::1]"); empty when malformed.
std::string host_of(std::string_view authority);

// True for localhost, 127.0.0.1 and [::1] (the names a loopback server is reached by).
bool is_loopback_host(std::string_view host);

// DNS rebinding defence: the Host must name this server. Accepted: loopback names, the bound
// address, --allowed-hosts; any port. A server bound to a wildcard (0.0.0.0, ::) accepts every
// Host unless --allowed-hosts is given (it cannot know the names it is reached by).
bool host_allowed(const origin_policy& p, std::string_view host_header);

// A browser's Origin ("scheme://host[:port]") may drive the server when it is the server's own
// (its authority equals the request's Host), a loopback origin, or in --allowed-origins.
bool origin_allowed(const origin_policy& p, std::string_view origin, std::string_view host_header);

// `application/json`, parameters (charset) allowed: what a browser cannot send cross-origin
// without a CORS preflight, unlike text/plain or form encodings.
bool is_json_content_type(std::string_view content_type);

}  // namespace troupe
