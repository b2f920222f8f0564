// The Responses API's WebSocket mode at /v1/responses (what the openai package's
// client.responses.connect() speaks): `response.create` client events, each answered with the same
// server events a streamed POST sends, one response at a time, several in sequence per connection.
// The session class lives in responses_ws_session.cpp so only that file compiles Beast's WebSocket.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "net/server_context.h"

namespace troupe {

// Takes over an upgraded connection to /v1/responses (see start_ws_session for `buffered`).
void start_responses_ws_session(boost::asio::ip::tcp::socket socket, std::shared_ptr<server_context> ctx,
                                boost::beast::http::request<boost::beast::http::string_body> upgrade,
                                std::string buffered = {});

}  // namespace troupe
