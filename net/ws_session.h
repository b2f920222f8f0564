// The WebSocket endpoint /v1/ws (protocol: docs/websocket.md): one connection runs several
// generations at once, each streamed as frames tagged with the client's id. The session class
// lives in ws_session.cpp so only that file compiles Beast's WebSocket templates.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "net/server_context.h"

namespace troupe {

// Takes over an upgraded connection: accepts the handshake for `upgrade` and serves it.
// `buffered`: bytes the client sent after the upgrade request and that were already read (its
// first frames); they are read before the socket.
void start_ws_session(boost::asio::ip::tcp::socket socket, std::shared_ptr<server_context> ctx,
                      boost::beast::http::request<boost::beast::http::string_body> upgrade,
                      std::string buffered = {});

}  // namespace troupe
