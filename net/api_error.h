// api_error: an error as an HTTP client sees it (status, OpenAI error object, Retry-After), and the
// one place where troupe's errc values map to HTTP statuses.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "config/error.h"

namespace troupe {

struct api_error {
  int status = 500;
  std::string message;
  std::string type = "internal_error";  // invalid_request_error | authentication_error | ...
  std::string param;                    // the offending request field; empty = null
  std::string code;                     // machine-readable detail; empty = null
  int retry_after_s = 0;                // > 0: send Retry-After (429, 503)
};

// invalid_argument/context_too_long 400, unauthorized 401, not_found 404, overloaded 429 +
// Retry-After, draining 503 + Retry-After, anything else 500.
api_error to_api_error(const error& e);

api_error bad_request(std::string message, std::string param = {}, std::string code = {});

// An extension's refusal or the extension host's failure (a filter's reject verdict, a route that
// crashed, timed out or is unavailable) as an OpenAI error: the type follows the status like the
// built-in errors; 429 and 503 get Retry-After.
api_error extension_error(int status, std::string message, std::string code);

// {"error": {"message", "type", "param", "code"}}
nlohmann::json api_error_json(const api_error& e);
std::string api_error_body(const api_error& e);

// The metrics label for a rejected request: "overloaded", "draining", "invalid", ...
const char* rejection_reason(const api_error& e);

}  // namespace troupe
