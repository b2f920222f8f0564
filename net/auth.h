// API-key check for `--api-key`: `Authorization: Bearer <key>`, compared in constant time.
#pragma once

#include <string>
#include <string_view>

namespace troupe {

// True when `expected` equals `given`; time depends only on their lengths.
bool constant_time_equal(std::string_view expected, std::string_view given);

// True when no key is configured, or the Authorization header carries it as a Bearer token.
bool authorized(std::string_view api_key, std::string_view authorization_header);

// Browsers cannot set headers on a WebSocket upgrade: for GET /v1/ws the key may come as the query
// parameter `api_key` (percent-encoded). Returns "Bearer <key>" from a request target
// ("/v1/ws?api_key=..."), or "" when it has none.
std::string bearer_from_query(std::string_view target);

}  // namespace troupe
