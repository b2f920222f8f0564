// HTTP response serialization and SSE framing (see http_message.h).
#include "net/http_message.h"

#include <cstdio>

namespace troupe {

http_response http_response::json(int status, std::string body) {
  http_response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

http_response http_response::text(int status, std::string body, std::string content_type) {
  http_response r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

http_response http_response::error(const api_error& e) {
  http_response r = json(e.status, api_error_body(e));
  if (e.retry_after_s > 0) r.headers.emplace_back("Retry-After", std::to_string(e.retry_after_s));
  return r;
}

const char* status_reason(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string serialize_response(const http_response& r, bool keep_alive, unsigned version) {
  std::string out = version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(r.status) + " " + status_reason(r.status) + "\r\n";
  out += "Server: troupe\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += "\r\n";
  out += r.body;
  return out;
}

std::string sse_head(bool chunked) {
  std::string out = chunked ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.0 200 OK\r\n";
  out += "Server: troupe\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n";
  out += chunked ? "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n" : "Connection: close\r\n";
  out += "\r\n";
  return out;
}

namespace {
std::string frame(std::string payload, bool chunked) {
  if (!chunked || payload.empty()) return payload;
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", payload.size());
  return std::string(size) + payload + "\r\n";
}
}  // namespace

std::string sse_event(std::string_view data, bool chunked) {
  std::string out;
  append_sse_event(out, data, chunked);
  return out;
}

void append_sse_event(std::string& out, std::string_view data, bool chunked) {
  constexpr std::string_view head = "data: ", tail = "\n\n";
  if (chunked) {  // the chunk's size line, then the payload and the chunk's CRLF
    char size[32];
    const int n = std::snprintf(size, sizeof(size), "%zx\r\n", head.size() + data.size() + tail.size());
    out.append(size, static_cast<size_t>(n));
  }
  out.append(head);
  out.append(data);
  out.append(tail);
  if (chunked) out.append("\r\n");
}

std::string sse_named_event(std::string_view name, std::string_view data, bool chunked) {
  std::string payload = "event: ";
  payload += name;
  payload += "\ndata: ";
  payload += data;
  payload += "\n\n";
  return frame(std::move(payload), chunked);
}

std::string sse_close(bool chunked) { return chunked ? "0\r\n\r\n" : std::string(); }

std::string sse_end(bool chunked) {
  std::string out = sse_event("[DONE]", chunked);
  if (chunked) out += "0\r\n\r\n";
  return out;
}

}  // namespace troupe
