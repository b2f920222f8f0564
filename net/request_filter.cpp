// Request-filter plumbing shared by the sessions (see request_filter.h).
#include "net/request_filter.h"

#include <cctype>
#include <string_view>

#include "net/auth.h"

namespace troupe {

http_metadata request_metadata(const boost::beast::http::request<boost::beast::http::string_body>& msg) {
  http_metadata m;
  m.method = std::string(msg.method_string());
  const std::string_view target(msg.target().data(), msg.target().size());
  m.path = std::string(target.substr(0, target.find('?')));
  std::string authorization(msg[boost::beast::http::field::authorization]);
  if (authorization.empty() && m.path == "/v1/ws") authorization = bearer_from_query(target);
  constexpr std::string_view bearer = "Bearer ";
  if (authorization.compare(0, bearer.size(), bearer) == 0) m.api_key = authorization.substr(bearer.size());
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    m.headers.push_back({std::move(name), std::string(field.value())});
  }
  return m;
}

api_error filter_rejection(const filter_verdict& v) {
  return extension_error(v.status, v.message.empty() ? "rejected by a request filter" : v.message, v.code);
}

}  // namespace troupe
