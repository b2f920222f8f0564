// The request filters of the extension API as every generation entry point sees them: what a filter
// is told of the request (http_metadata from the HTTP message that carried it: a POST, or for
// /v1/ws the upgrade request) and a filter's rejection as an OpenAI error.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "net/api_error.h"
#include "troupe/extension_types.h"

namespace troupe {

// Method, path (no query), bearer key (Authorization, or for /v1/ws the api_key query parameter)
// and every header, names lower-cased.
http_metadata request_metadata(const boost::beast::http::request<boost::beast::http::string_body>& msg);

// A filter's rejection as an OpenAI error (net/api_error.h's extension_error owns the format).
api_error filter_rejection(const filter_verdict& v);

}  // namespace troupe
