// The plain values that travel between the server and custom actors (extensions): what a request
// filter sees and answers, what a custom route receives and replies, and what an observer learns
// about a request before its events. CAF-free, so the listener can include it cheaply; the CAF
// inspectors, atoms and typed interfaces are in <troupe/extension.h>.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "troupe/generation.h"

namespace troupe {

struct http_header {
  std::string name;  // lower-case
  std::string value;
};

// The HTTP side of a request, as the client sent it.
struct http_metadata {
  std::string method;                // "POST"
  std::string path;                  // "/v1/chat/completions" (no query string)
  std::string api_key;               // from "Authorization: Bearer KEY"; empty if none
  std::vector<http_header> headers;  // every request header, names lower-cased
};

// Asked of every request filter, in registration order, before the request reaches the scheduler.
struct filter_request {
  generation_request request;  // tokenized prompt, sampling params (after earlier filters), n
  http_metadata http;
};

// A filter's answer. accept: the request goes on (with `params` if `rewrite`); otherwise it is
// answered with `status` (4xx/5xx) and an OpenAI error body carrying `message` and `code`.
struct filter_verdict {
  bool accept = true;
  bool rewrite = false;    // accept with these sampling params instead of the request's
  sampling_params params;
  int32_t status = 0;      // reject: HTTP status (e.g. 429, 403)
  std::string message;     // reject: human-readable reason
  std::string code;        // reject: machine-readable code ("rate_limited")

  static filter_verdict accept_as_is() { return {}; }
  static filter_verdict accept_with(sampling_params p) {
    filter_verdict v;
    v.rewrite = true;
    v.params = std::move(p);
    return v;
  }
  static filter_verdict reject(int32_t status, std::string message, std::string code = {}) {
    filter_verdict v;
    v.accept = false;
    v.status = status;
    v.message = std::move(message);
    v.code = std::move(code);
    return v;
  }
};

// Told to every observer when a request has been admitted by the filters and is submitted; then
// its generation_events follow, and finally either each choice's last event or one failure.
struct request_info {
  std::string request_id;
  http_metadata http;  // headers left out (observers see method, path and API key)
  int32_t num_prompt_tokens = 0;
  int32_t n = 1;
  sampling_params params;
};

// A request for a custom route (method + exact path registered by the extension).
struct route_request {
  http_metadata http;
  std::string body;
};

struct route_response {
  int32_t status = 200;
  std::string content_type = "application/json";
  std::string body;
};

}  // namespace troupe
