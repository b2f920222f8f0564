// http_session, the connection half (see http_session.h): reading and parsing requests, the write
// queue, timeouts and closing. Everything runs on the connection's strand; routing lives in
// http_session_routing.cpp, generations and SSE in http_session_generation.cpp.
#include "net/http_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/read.hpp>

#include "config/log.h"
#include "net/http_generation.h"

namespace troupe {

namespace http = beast::http;

namespace {
constexpr std::size_t k_header_limit = 16 * 1024;
constexpr std::size_t k_max_buffered = 64 * 1024;  // pipelined bytes kept while a request runs
constexpr double k_linger_s = 1.0;                 // drain unread input before closing
}  // namespace

http_session::http_session(tcp::socket socket, std::shared_ptr<server_context> ctx)
    : socket_(std::move(socket)), strand_(socket_.get_executor()), ctx_(std::move(ctx)), timer_(strand_) {
  ctx_->num_connections.fetch_add(1);
}

http_session::~http_session() {
  ctx_->remove_session(registry_id_);
  ctx_->num_connections.fetch_sub(1);
}

void http_session::run() {
  registry_id_ = ctx_->add_session(weak_from_this());
  boost::asio::dispatch(strand_, [self = shared_from_this()] {
    self->arm_timer(self->ctx_->opts.server.header_timeout_s);  // the whole first header
    self->do_read_some();
  });
}

void http_session::reject(const http_response& resp) {
  boost::asio::dispatch(strand_, [self = shared_from_this(), resp] {
    self->phase_ = phase::busy;
    self->keep_alive_ = false;
    self->respond(resp);
  });
}

void http_session::shutdown() {
  boost::asio::post(strand_, [self = shared_from_this()] {
    self->shutting_down_ = true;
    self->keep_alive_ = false;
    if (self->phase_ == phase::idle || self->phase_ == phase::header || self->phase_ == phase::body) {
      self->close();
    }
  });
}

// -- reading ---------------------------------------------------------------------------------

void http_session::do_read_some() {
  if (reading_ || phase_ == phase::closed || buffer_.size() >= k_max_buffered) return;
  reading_ = true;
  socket_.async_read_some(buffer_.prepare(4096),
                          beast::bind_front_handler(&http_session::on_read_some, shared_from_this()));
}

void http_session::on_read_some(beast::error_code ec, std::size_t n) {
  reading_ = false;
  if (phase_ == phase::closed) return;
  if (ec) {
    if (phase_ == phase::busy && gen_) {
      client_gone();
    } else if (phase_ != phase::busy) {
      close();
    }
    return;
  }
  buffer_.commit(n);
  switch (phase_) {
    case phase::idle:
      phase_ = phase::header;
      if (!first_request_) arm_timer(ctx_->opts.server.header_timeout_s);
      do_read_header();
      break;
    case phase::busy:
      // The next request arrived early (pipelining, or our response's completion is still queued
      // behind this read): keep its bytes and stop watching, so after_response can parse them.
      break;
    case phase::closing:
      buffer_.consume(buffer_.size());
      do_read_some();
      break;
    default:
      break;
  }
}

void http_session::do_read_header() {
  parser_.emplace();
  parser_->header_limit(k_header_limit);
  parser_->body_limit(ctx_->opts.server.max_body_bytes);
  reading_ = true;
  http::async_read_header(socket_, buffer_, *parser_,
                          beast::bind_front_handler(&http_session::on_read_header, shared_from_this()));
}

void http_session::on_read_header(beast::error_code ec, std::size_t) {
  reading_ = false;
  if (phase_ == phase::closed) return;
  if (ec == http::error::header_limit) {
    phase_ = phase::busy;
    keep_alive_ = false;
    respond(ctx_->routes.reject(api_error{431, "request header too large", "invalid_request_error", {}, {}}));
    return;
  }
  if (ec == http::error::body_limit) {  // a chunked body's first chunk can already exceed it
    on_read_body(ec, 0);
    return;
  }
  if (ec == http::error::end_of_stream || ec == boost::asio::error::eof ||
      ec == boost::asio::error::operation_aborted || ec == boost::asio::error::connection_reset) {
    close();
    return;
  }
  if (ec) {
    logger("net")->debug("bad request header: {}", ec.message());
    phase_ = phase::busy;
    keep_alive_ = false;
    respond(ctx_->routes.reject(bad_request("malformed HTTP request: " + ec.message())));
    return;
  }
  const auto& req = parser_->get();
  version_ = req.version();
  head_request_ = req.method() == http::verb::head;
  if (auto len = parser_->content_length(); len && *len > ctx_->opts.server.max_body_bytes) {
    phase_ = phase::busy;
    keep_alive_ = false;
    respond(ctx_->routes.reject(api_error{413,
                                          "request body of " + std::to_string(*len) + " bytes exceeds the limit of " +
                                              std::to_string(ctx_->opts.server.max_body_bytes),
                                          "invalid_request_error", {}, "body_too_large"}));
    return;
  }
  if (parser_->is_done()) {
    handle_request();
    return;
  }
  if (beast::iequals(req[http::field::expect], "100-continue")) send("HTTP/1.1 100 Continue\r\n\r\n");
  do_read_body();
}

void http_session::do_read_body() {
  phase_ = phase::body;
  arm_timer(ctx_->opts.server.idle_timeout_s);
  reading_ = true;
  http::async_read(socket_, buffer_, *parser_,
                   beast::bind_front_handler(&http_session::on_read_body, shared_from_this()));
}

void http_session::on_read_body(beast::error_code ec, std::size_t) {
  reading_ = false;
  if (phase_ == phase::closed) return;
  if (ec == http::error::body_limit) {
    phase_ = phase::busy;
    keep_alive_ = false;
    respond(ctx_->routes.reject(api_error{413, "request body exceeds the limit of " +
                                                   std::to_string(ctx_->opts.server.max_body_bytes) + " bytes",
                                          "invalid_request_error", {}, "body_too_large"}));
    return;
  }
  if (ec) {
    logger("net")->debug("request body not read: {}", ec.message());
    close();
    return;
  }
  handle_request();
}

// -- writing ---------------------------------------------------------------------------------

void http_session::send(std::string bytes) {
  if (phase_ == phase::closed) return;
  queue_.push_back(std::move(bytes));
  if (!writing_) do_write();
}

void http_session::respond(const http_response& r) {
  std::string bytes = serialize_response(r, keep_alive_, version_);
  if (head_request_) bytes.resize(bytes.size() - r.body.size());
  send(std::move(bytes));
  complete_response(keep_alive_);
}

void http_session::complete_response(bool keep_alive) {
  keep_alive_ = keep_alive;
  response_complete_ = true;
  if (!writing_ && queue_.empty()) after_response();
}

void http_session::do_write() {
  writing_ = true;
  boost::asio::async_write(socket_, boost::asio::buffer(queue_.front()),
                           beast::bind_front_handler(&http_session::on_write, shared_from_this()));
}

void http_session::on_write(beast::error_code ec, std::size_t) {
  writing_ = false;
  if (phase_ == phase::closed) return;
  if (ec) {
    queue_.clear();
    if (gen_) {
      client_gone();
    } else {
      close();
    }
    return;
  }
  queue_.pop_front();
  if (!queue_.empty()) {
    do_write();
  } else if (response_complete_) {
    after_response();
  }
}

void http_session::after_response() {
  response_complete_ = false;
  if (phase_ == phase::closed || phase_ == phase::closing) return;
  if (!keep_alive_ || shutting_down_) {
    linger_close();
    return;
  }
  phase_ = phase::idle;
  arm_timer(ctx_->opts.server.idle_timeout_s);
  if (reading_) return;  // the pending read continues as the next request's first bytes
  if (buffer_.size() > 0) {
    phase_ = phase::header;
    arm_timer(ctx_->opts.server.header_timeout_s);
    do_read_header();
  } else {
    do_read_some();
  }
}

// -- timers and closing ----------------------------------------------------------------------

void http_session::arm_timer(double seconds) {
  const uint64_t seq = ++timer_seq_;
  timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds)));
  timer_.async_wait([self = shared_from_this(), seq](beast::error_code ec) {
    if (!ec) self->on_timer(seq);
  });
}

void http_session::cancel_timer() {
  ++timer_seq_;
  timer_.cancel();
}

void http_session::on_timer(uint64_t seq) {
  if (seq != timer_seq_) return;
  if (phase_ == phase::header || phase_ == phase::body) {
    logger("net")->debug("closing a connection: request not received in time");
  }
  if (phase_ != phase::busy) close();
}

void http_session::linger_close() {
  // Half-close and read what the client still sends, so unread input does not turn our last
  // response into a connection reset on its side.
  phase_ = phase::closing;
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  arm_timer(k_linger_s);
  buffer_.consume(buffer_.size());
  do_read_some();
}

void http_session::close() {
  if (phase_ == phase::closed) return;
  phase_ = phase::closed;
  cancel_timer();
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace troupe
