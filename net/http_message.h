// Beast-free HTTP request/response values the routes work on, and their wire form: responses are
// written as plain bytes (one write queue for whole responses, SSE chunks and the final chunk).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/api_error.h"

namespace troupe {

struct http_request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // target without the query string
  std::string query;   // what follows the '?' of the target, raw ("" when none)
  std::string body;
  std::string authorization;
  unsigned version = 11;  // 10 or 11
  bool keep_alive = true;
};

struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Retry-After, Allow)

  static http_response json(int status, std::string body);
  static http_response text(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");
  static http_response error(const api_error& e);
};

const char* status_reason(int status);

// The full response: status line, headers (Content-Length, Connection), body.
std::string serialize_response(const http_response& r, bool keep_alive, unsigned version);

// Server-sent events over a response of unknown length: HTTP/1.1 uses chunked encoding;
// HTTP/1.0 writes raw bytes and closes the connection at the end.
std::string sse_head(bool chunked);
std::string sse_event(std::string_view data, bool chunked);  // "data: <data>\n\n", framed
// sse_event's bytes appended to `out` (no allocation once `out` has the capacity).
void append_sse_event(std::string& out, std::string_view data, bool chunked);
std::string sse_end(bool chunked);                           // "data: [DONE]\n\n" + last chunk
// A named event ("event: <name>\ndata: <data>\n\n", the Responses API's framing) and the end of a
// stream without the [DONE] sentinel.
std::string sse_named_event(std::string_view name, std::string_view data, bool chunked);
std::string sse_close(bool chunked);

}  // namespace troupe
