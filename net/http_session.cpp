// http_session, the connection half (see http_session.h): reading and parsing requests, the write
// queue, timeouts and closing. Everything runs on the connection's strand; routing lives in
// http_session_routing.cpp, generations and SSE in http_session_generation.cpp.
#include "net/http_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
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

// Transfer-Encoding (every such field, joined as one list) and Host as framing_error sees them.
template <class Message>
std::optional<api_error> framing_of(const Message& req) {
  std::optional<std::string> te;
  const auto [first, last] = req.equal_range(http::field::transfer_encoding);
  for (auto f = first; f != last; ++f) {
    const std::string v(f->value().data(), f->value().size());
    te = te ? *te + ", " + v : v;
  }
  return framing_error(req.version(), te ? std::optional<std::string_view>(*te) : std::nullopt,
                       static_cast<std::size_t>(req.count(http::field::host)));
}
}  // namespace

http_session::session_socket http_session::adopt(tcp::socket s) {
  // The listener accepts on a strand over its io_context (make_strand): recover its concrete type.
  const auto* strand = s.get_executor().target<session_strand>();
  session_socket out(strand ? *strand
                            : boost::asio::make_strand(static_cast<boost::asio::io_context&>(
                                  boost::asio::query(s.get_executor(), boost::asio::execution::context))));
  beast::error_code ec;
  const tcp::endpoint local = s.local_endpoint(ec);
  if (ec) return out;  // not open: the first read fails and the session closes
  const auto fd = s.release(ec);
  if (!ec) out.assign(local.protocol(), fd, ec);
  return out;
}

tcp::socket http_session::release_plain(session_socket& s) {
  tcp::socket out(s.get_executor());
  beast::error_code ec;
  const tcp::endpoint local = s.local_endpoint(ec);
  if (ec) return out;
  const auto fd = s.release(ec);
  if (!ec) out.assign(local.protocol(), fd, ec);
  return out;
}

http_session::http_session(tcp::socket socket, std::shared_ptr<server_context> ctx)
    : socket_(adopt(std::move(socket))), strand_(socket_.get_executor()), ctx_(std::move(ctx)), timer_(strand_),
      write_timer_(strand_) {
  ctx_->num_connections.fetch_add(1);
}

http_session::~http_session() {
  ctx_->remove_session(registry_id_);
  ctx_->release_connection(counted_);
}

void http_session::run() {
  registry_id_ = ctx_->add_session(weak_from_this());
  boost::asio::dispatch(strand_, [self = shared_from_this()] {
    self->arm_timer(self->ctx_->opts.server.header_timeout_s);  // the whole first header
    self->do_read_some();
  });
}

void http_session::reject(const http_response& resp) {
  boost::asio::dispatch(strand_, [self = shared_from_this(), resp] { self->refuse(resp); });
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
// Design note: one read loop (async_read_some into buffer_) and a parser fed from buffer_ by
// hand. Bytes that arrive while a request is handled stay in buffer_ (pipelining), and a read
// stays pending meanwhile so a closed socket is noticed; after the response, the next request
// is parsed from buffer_ first, whether or not that read has completed. The socket reads into
// read_buf_, never into buffer_, so the parser may consume buffer_ while a read is pending.

void http_session::do_read_some() {
  if (reading_ || phase_ == phase::closed || buffer_.size() >= k_max_buffered) return;
  reading_ = true;
  socket_.async_read_some(boost::asio::buffer(read_buf_),
                          beast::bind_front_handler(&http_session::on_read_some, shared_from_this()));
}

void http_session::on_read_some(beast::error_code ec, std::size_t n) {
  reading_ = false;
  if (phase_ == phase::closed) return;
  if (!ec) buffer_.commit(boost::asio::buffer_copy(buffer_.prepare(n), boost::asio::buffer(read_buf_, n)));
  if (upgrade_) {  // the read was cancelled so that the socket can move
    hand_off_upgrade();
    return;
  }
  if (ec) {
    if (phase_ == phase::busy && gen_) {
      client_gone();
    } else if (phase_ != phase::busy) {
      close();
    }
    return;  // busy without a generation: the response completes, then the next read fails
  }
  switch (phase_) {
    case phase::idle:
      begin_request();
      break;
    case phase::header:
    case phase::body:
      parse_buffered();
      break;
    case phase::busy:
      do_read_some();  // keep the early bytes (bounded) and keep watching for a close
      break;
    case phase::closing:
      buffer_.consume(buffer_.size());
      do_read_some();
      break;
    default:
      break;
  }
}

void http_session::begin_request() {
  phase_ = phase::header;
  cors_origin_.clear();
  if (!first_request_) arm_timer(ctx_->opts.server.header_timeout_s);  // the first: since accept
  parser_.emplace();
  parser_->header_limit(k_header_limit);
  parser_->body_limit(ctx_->opts.server.max_body_bytes);
  parse_buffered();
}

void http_session::parse_buffered() {
  beast::error_code ec;
  while (buffer_.size() > 0 && !parser_->is_done()) {
    const bool had_header = parser_->is_header_done();
    buffer_.consume(parser_->put(buffer_.data(), ec));
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) break;
    if (!had_header && parser_->is_header_done() && !on_header()) return;
  }
  if (ec) {
    on_parse_error(ec);
  } else if (parser_->is_done()) {
    handle_request();
  } else {
    do_read_some();
  }
}

void http_session::on_parse_error(beast::error_code ec) {
  if (ec == http::error::header_limit) {
    refuse(ctx_->routes.reject(api_error{431, "request header too large", "invalid_request_error", {}, {}}));
  } else if (ec == http::error::body_limit) {
    refuse(ctx_->routes.reject(api_error{413, "request body exceeds the limit of " +
                                                  std::to_string(ctx_->opts.server.max_body_bytes) + " bytes",
                                         "invalid_request_error", {}, "body_too_large"}));
  } else {
    logger("net")->debug("bad request: {}", ec.message());
    refuse(ctx_->routes.reject(bad_request("malformed HTTP request: " + ec.message())));
  }
}

bool http_session::on_header() {
  const auto& req = parser_->get();
  version_ = req.version();
  head_request_ = req.method() == http::verb::head;
  if (auto len = parser_->content_length(); len && *len > ctx_->opts.server.max_body_bytes) {
    refuse(ctx_->routes.reject(api_error{413,
                                         "request body of " + std::to_string(*len) + " bytes exceeds the limit of " +
                                             std::to_string(ctx_->opts.server.max_body_bytes),
                                         "invalid_request_error", {}, "body_too_large"}));
    return false;
  }
  if (auto framing = framing_of(req)) {
    refuse(ctx_->routes.reject(*framing));
    return false;
  }
  if (parser_->is_done()) return true;
  phase_ = phase::body;
  arm_timer(ctx_->opts.server.idle_timeout_s);
  if (beast::iequals(req[http::field::expect], "100-continue")) {
    // The client holds its body back until told to send it: tell it only if the request would be
    // accepted, so that a refused upload is never sent.
    if (auto denial = screen(make_request(req), req)) {
      refuse(*denial);
      return false;
    }
    send("HTTP/1.1 100 Continue\r\n\r\n");
  }
  return true;
}

void http_session::refuse(const http_response& r) {
  phase_ = phase::busy;
  keep_alive_ = false;
  respond(r);
}

// -- writing ---------------------------------------------------------------------------------

void http_session::send(std::string bytes) {
  if (phase_ == phase::closed) return;
  const bool behind_others = !out_.empty();
  out_.append_owned(std::move(bytes));
  queued(behind_others);
}

void http_session::send_sse(std::string_view data, bool chunked) {
  if (phase_ == phase::closed) return;
  const bool behind_others = !out_.empty();
  append_sse_event(out_.tail(), data, chunked);
  queued(behind_others);
}

void http_session::queued(bool behind_others) {
  // A response already queued is written whatever its size (its memory is spent); what bounds
  // memory is refusing to pile more behind it for a client that does not read (SSE).
  if (behind_others && out_.size() > ctx_->opts.server.max_queued_output_bytes) {
    drop_slow_client("queue_full");
    return;
  }
  if (!writing_) do_write();
}

void http_session::respond(http_response r) {
  if (!cors_origin_.empty()) {
    r.headers.emplace_back("Access-Control-Allow-Origin", cors_origin_);
    r.headers.emplace_back("Vary", "Origin");
  }
  std::string bytes = serialize_response(r, keep_alive_, version_);
  if (head_request_) bytes.resize(bytes.size() - r.body.size());
  send(std::move(bytes));
  complete_response(keep_alive_);
}

void http_session::complete_response(bool keep_alive) {
  keep_alive_ = keep_alive;
  response_complete_ = true;
  if (!writing_ && out_.empty()) after_response();
}

void http_session::do_write() {
  // write_some, not async_write: each completion is progress, and the write timeout measures the
  // time without any.
  writing_ = true;
  arm_write_timer();
  const std::string_view next = out_.next();  // everything queued since the last write, at once
  socket_.async_write_some(boost::asio::buffer(next.data(), next.size()),
                           arena_handler(arena_, [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                             self->on_write(ec, n);
                           }));
}

void http_session::on_write(beast::error_code ec, std::size_t n) {
  writing_ = false;
  if (phase_ == phase::closed) {
    out_.clear();  // no write holds its bytes any more
    return;
  }
  if (ec) {
    out_.clear();
    if (gen_) {
      client_gone();
    } else {
      close();
    }
    return;
  }
  out_.consumed(n);
  if (!out_.empty()) {
    do_write();
    return;
  }
  // Nothing left to write: the write timer, if armed, finds no write in flight when it fires.
  if (response_complete_) after_response();
}

void http_session::arm_write_timer() {
  // Each write pushes the deadline; the timer is armed once and re-armed only when it fires before
  // it (a wait and a cancel per write would cost operations and executor copies per streamed token).
  write_deadline_ = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(ctx_->opts.server.write_timeout_s));
  if (!write_timer_armed_) wait_write_timer();
}

void http_session::wait_write_timer() {
  write_timer_armed_ = true;
  write_timer_.expires_at(write_deadline_);
  write_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    self->write_timer_armed_ = false;
    if (ec || !self->writing_ || self->phase_ == phase::closed) return;
    if (std::chrono::steady_clock::now() >= self->write_deadline_) {
      self->drop_slow_client("write_timeout");
    } else {
      self->wait_write_timer();  // the write made progress since: wait for its deadline
    }
  });
}

void http_session::drop_slow_client(const char* reason) {
  logger("net")->info("closing a connection that does not read its responses ({}, {} bytes queued)", reason,
                      out_.size());
  ctx_->metrics.count_slow_client("http", reason);
  client_gone();  // cancels the generation (its blocks return to the pool) and closes
}

void http_session::after_response() {
  response_complete_ = false;
  if (phase_ == phase::closed || phase_ == phase::closing) return;
  if (!keep_alive_ || shutting_down_) {
    linger_close();
    return;
  }
  phase_ = phase::idle;
  if (buffer_.size() > 0) {
    begin_request();  // pipelined: parse what is here; a pending read carries on into the parser
  } else {
    arm_timer(ctx_->opts.server.idle_timeout_s);
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
  ctx_->release_connection(counted_);
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  arm_timer(k_linger_s);
  buffer_.consume(buffer_.size());
  do_read_some();
}

void http_session::close() {
  if (phase_ == phase::closed) return;
  phase_ = phase::closed;
  ctx_->release_connection(counted_);
  cancel_timer();
  write_timer_.cancel();
  if (!writing_) out_.clear();  // else on_write frees the queue once the socket lets go of its bytes
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace troupe
