// errc -> HTTP status mapping and the OpenAI error body.
#include "net/api_error.h"

namespace troupe {

api_error to_api_error(const error& e) {
  api_error a;
  a.message = e.message.empty() ? errc_name(e.code) : e.message;
  a.code = errc_name(e.code);
  switch (e.code) {
    case errc::invalid_argument:
    case errc::context_too_long:
      a.status = 400;
      a.type = "invalid_request_error";
      break;
    case errc::unsupported:
      a.status = 400;
      a.type = "invalid_request_error";
      break;
    case errc::unauthorized:
      a.status = 401;
      a.type = "authentication_error";
      break;
    case errc::not_found:
      a.status = 404;
      a.type = "not_found_error";
      break;
    case errc::overloaded:
      a.status = 429;
      a.type = "rate_limit_error";
      a.retry_after_s = 1;
      break;
    case errc::draining:
      a.status = 503;
      a.type = "service_unavailable_error";
      a.retry_after_s = 5;
      break;
    case errc::unavailable:
      a.status = 503;
      a.type = "service_unavailable_error";
      a.retry_after_s = 1;
      break;
    default:
      a.status = 500;
      a.type = "internal_error";
      break;
  }
  return a;
}

api_error bad_request(std::string message, std::string param, std::string code) {
  api_error a;
  a.status = 400;
  a.type = "invalid_request_error";
  a.message = std::move(message);
  a.param = std::move(param);
  a.code = std::move(code);
  return a;
}

api_error extension_error(int status, std::string message, std::string code) {
  const char* type = status == 429   ? "rate_limit_error"
                     : status == 401 ? "authentication_error"
                     : status == 403 ? "permission_error"
                     : status == 503 ? "service_unavailable_error"
                     : status == 504 ? "timeout_error"
                     : status >= 500 ? "internal_error"
                                     : "invalid_request_error";
  api_error e{status, std::move(message), type, {}, std::move(code)};
  if (status == 429 || status == 503) e.retry_after_s = 1;
  return e;
}

nlohmann::json api_error_json(const api_error& e) {
  nlohmann::json err = {{"message", e.message}, {"type", e.type}};
  err["param"] = e.param.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.param);
  err["code"] = e.code.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.code);
  return nlohmann::json{{"error", std::move(err)}};
}

std::string api_error_body(const api_error& e) {
  return api_error_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

const char* rejection_reason(const api_error& e) {
  switch (e.status) {
    case 400: return e.code == "context_too_long" ? "context_too_long" : "invalid";
    case 401: return "unauthorized";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 413: return "too_large";
    case 429: return "overloaded";
    case 503: return e.code == "unavailable" ? "unavailable" : "draining";
    default: return "error";
  }
}

}  // namespace troupe
