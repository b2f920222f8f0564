// API-key check for `--api-key`: `Authorization: Bearer <key>`, compared in constant time.
#pragma once

#include <string_view>

namespace troupe {

// True when `expected` equals `given`; time depends only on their lengths.
bool constant_time_equal(std::string_view expected, std::string_view given);

// True when no key is configured, or the Authorization header carries it as a Bearer token.
bool authorized(std::string_view api_key, std::string_view authorization_header);

}  // namespace troupe
