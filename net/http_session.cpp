// http_session (see http_session.h). Everything runs on the connection's strand; engine callbacks
// arrive on actor threads and are posted here. Responses are queued as bytes, written one at a time.
#include "net/http_session.h"

#include <cctype>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "config/log.h"
#include "net/auth.h"  // bearer_from_query
#include "net/ws_session.h"  // start_ws_session

namespace troupe {

namespace http = beast::http;

namespace {
constexpr std::size_t k_header_limit = 16 * 1024;
constexpr std::size_t k_max_buffered = 64 * 1024;  // pipelined bytes kept while a request runs
constexpr double k_linger_s = 1.0;                 // drain unread input before closing

// What extensions see of a request: method, path, bearer key, headers (names lower-cased).
template <class Message>
http_metadata extension_metadata(const http_request& req, const Message& msg) {
  http_metadata m;
  m.method = req.method;
  m.path = req.path;
  constexpr std::string_view bearer = "Bearer ";
  if (req.authorization.compare(0, bearer.size(), bearer) == 0) m.api_key = req.authorization.substr(bearer.size());
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    m.headers.push_back({std::move(name), std::string(field.value())});
  }
  return m;
}

// A filter's rejection as an OpenAI error (net/api_error.h owns the format).
api_error filter_rejection(const filter_verdict& v) {
  return extension_error(v.status, v.message.empty() ? "rejected by a request filter" : v.message, v.code);
}
}  // namespace

struct http_session::generation {
  generation(server_metrics& m, const openai_request& r, std::string id)
      : request_id(std::move(id)),
        meta(make_response_meta(r, request_id)),
        tracker(r.gen.n, static_cast<int32_t>(r.gen.prompt_ids.size()), !r.stream),
        timing(m, r.gen.n),
        stream(r.stream),
        include_usage(r.include_usage),
        first_sent(static_cast<size_t>(r.gen.n), false),
        text_offset(static_cast<size_t>(r.gen.n), 0) {}

  std::string request_id;
  response_meta meta;
  generation_tracker tracker;
  request_timing timing;
  bool stream = false;
  bool include_usage = false;
  bool chunked = true;       // HTTP/1.1: chunked SSE; HTTP/1.0: raw bytes then close
  bool head_sent = false;    // SSE headers written
  bool client_gone = false;  // cancelled because the client went away
  std::vector<bool> first_sent;      // [n] chat role sent
  std::vector<int64_t> text_offset;  // [n] bytes of text streamed so far
};

http_session::http_session(tcp::socket socket, std::shared_ptr<server_context> ctx)
    : socket_(std::move(socket)), strand_(socket_.get_executor()), ctx_(std::move(ctx)), timer_(strand_) {
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

// -- dispatch --------------------------------------------------------------------------------

void http_session::handle_request() {
  cancel_timer();
  phase_ = phase::busy;
  first_request_ = false;
  auto msg = parser_->release();
  parser_.reset();

  http_request req;
  req.method = std::string(msg.method_string());
  const std::string_view target(msg.target().data(), msg.target().size());
  req.path = std::string(target.substr(0, target.find('?')));
  req.authorization = std::string(msg[http::field::authorization]);
  if (req.authorization.empty() && req.path == "/v1/ws") req.authorization = bearer_from_query(target);
  req.version = msg.version();
  req.body = std::move(msg.body());
  keep_alive_ = msg.keep_alive() && !shutting_down_;
  logger("net")->debug("{} {}", req.method, req.path);
  if (ctx_->ext) http_meta_ = extension_metadata(req, msg);

  try {
    dispatch(req, msg);
  } catch (const std::exception& e) {  // handlers never throw; this is the last line of defence
    logger("net")->error("{} {} failed: {}", req.method, req.path, e.what());
    if (phase_ == phase::busy && !gen_) respond(ctx_->routes.reject(api_error{500, e.what(), "internal_error", {}, {}}));
  }
}

void http_session::dispatch(const http_request& req, request_message& msg) {
  const route_match m = ctx_->routes.match(req.path);
  if (m.id == route_id::unknown && ctx_->ext) {  // built-in routes take precedence
    if (const extension_route* xr = ctx_->ext->find_route(req.path)) {
      run_extension_route(*xr, req);
      return;
    }
  }
  if (auto denial = ctx_->routes.admit(m, req)) {
    respond(*denial);
    return;
  }
  switch (m.id) {
    case route_id::websocket: {
      if (!beast::websocket::is_upgrade(msg)) {
        respond(ctx_->routes.reject(bad_request("GET /v1/ws expects a WebSocket upgrade")));
        return;
      }
      phase_ = phase::closed;  // the socket now belongs to the WebSocket session (it counts it)
      ctx_->release_connection(counted_);
      start_ws_session(std::move(socket_), ctx_, std::move(msg));
      return;
    }
    case route_id::health:
    case route_id::metrics:
      run_blocking(m.id);
      return;
    case route_id::completions:
    case route_id::chat_completions: {
      auto parsed = ctx_->routes.parse_generation(m.id, req.body);
      if (is_error(parsed)) {
        respond(ctx_->routes.reject(std::get<api_error>(parsed)));
      } else {
        start_generation(std::move(std::get<openai_request>(parsed)));
      }
      return;
    }
    default:
      respond(ctx_->routes.handle_quick(m.id, req));
      return;
  }
}

void http_session::run_blocking(route_id id) {
  // engine.stats() waits on the actors: never on an I/O thread.
  boost::asio::post(ctx_->blocking, [self = shared_from_this(), id] {
    http_response r = self->ctx_->routes.handle_blocking(id);
    boost::asio::post(self->strand_, [self, r = std::move(r)] {
      if (self->phase_ == phase::busy) self->respond(r);
    });
  });
}

// -- generation ------------------------------------------------------------------------------

void http_session::run_extension_route(const extension_route& r, const http_request& req) {
  if (r.method != "*" && req.method != r.method) {
    http_response resp = ctx_->routes.reject(api_error{405, "method " + req.method + " is not allowed on " + req.path +
                                                                "; use " + r.method,
                                                        "invalid_request_error", {}, "method_not_allowed"});
    resp.headers.emplace_back("Allow", r.method);
    respond(resp);
    return;
  }
  if (r.needs_auth && !authorized(ctx_->opts.server.api_key, req.authorization)) {
    respond(ctx_->routes.reject(api_error{401, "invalid or missing API key (Authorization: Bearer <key>)",
                                          "authentication_error", {}, "invalid_api_key"}));
    return;
  }
  auto self = shared_from_this();
  ctx_->ext->route(r, route_request{http_meta_, req.body}, [self](route_result result) {
    boost::asio::post(self->strand_, [self, result = std::move(result)] {
      if (self->phase_ != phase::busy) return;
      if (const auto* f = std::get_if<extension_failure>(&result)) {
        self->respond(self->ctx_->routes.reject(extension_error(f->status, f->message, f->code)));
        return;
      }
      const auto& rr = std::get<route_response>(result);
      http_response resp;
      resp.status = rr.status;
      resp.content_type = rr.content_type;
      resp.body = rr.body;
      self->respond(resp);
    });
  });
}

void http_session::start_generation(openai_request req) {
  if (!ctx_->ext || !ctx_->ext->has_filters()) {
    submit_generation(std::move(req));
    return;
  }
  // The filters answer on an actor thread; the connection waits (phase busy) for their verdict.
  auto self = shared_from_this();
  auto pending = std::make_shared<openai_request>(std::move(req));
  filter_request fr{pending->gen, http_meta_};
  ctx_->ext->filter(std::move(fr), [self, pending](filter_verdict v) {
    boost::asio::post(self->strand_, [self, pending, v = std::move(v)] {
      if (self->phase_ != phase::busy || self->gen_) return;
      if (!v.accept) {
        self->respond(self->ctx_->routes.reject(filter_rejection(v)));
        return;
      }
      if (v.rewrite) pending->gen.params = v.params;
      self->submit_generation(std::move(*pending));
    });
  });
}

void http_session::submit_generation(openai_request req) {
  std::string id = ctx_->new_request_id();
  req.gen.request_id = id;
  gen_ = std::make_unique<generation>(ctx_->metrics, req, id);
  gen_->chunked = version_ >= 11;
  if (req.stream && !gen_->chunked) keep_alive_ = false;
  const uint64_t seq = ++gen_seq_;
  auto self = shared_from_this();
  try {
    ctx_->submit(
        std::move(req.gen), http_meta_,
        [self, seq](const generation_event& ev) {
          boost::asio::post(self->strand_, [self, seq, ev] { self->on_event(seq, ev); });
        },
        [self, seq](const error& e) {
          boost::asio::post(self->strand_, [self, seq, e] { self->on_error(seq, e); });
        });
  } catch (const std::exception& e) {
    gen_.reset();
    respond(ctx_->routes.reject(api_error{500, std::string("submit failed: ") + e.what(), "internal_error", {}, {}}));
    return;
  }
  do_read_some();  // notice a client that goes away while we wait
}

void http_session::on_event(uint64_t seq, const generation_event& ev) {
  if (!gen_ || seq != gen_seq_) return;
  generation& g = *gen_;
  if (!g.tracker.add(ev)) return;
  g.timing.on_event(ev);
  const bool done = g.tracker.done();
  if (done) g.timing.on_done();
  if (g.client_gone || phase_ == phase::closed) {
    if (done) finish_generation();
    return;
  }
  const text_codec* codec = ctx_->routes.codec();
  if (g.stream) {
    if (!g.head_sent) {
      send(sse_head(g.chunked));
      g.head_sent = true;
    }
    const auto i = static_cast<size_t>(ev.index);
    const bool first = !g.first_sent[i];
    g.first_sent[i] = true;
    send(sse_event(stream_chunk(g.meta, ev, codec, first, g.include_usage, g.text_offset[i]), g.chunked));
    g.text_offset[i] += static_cast<int64_t>(ev.text.size());
    if (done) {
      if (g.include_usage) send(sse_event(usage_chunk(g.meta, g.tracker.usage()), g.chunked));
      send(sse_end(g.chunked));
      const bool keep = keep_alive_ && g.chunked;
      finish_generation();
      complete_response(keep);
    }
  } else if (done) {
    http_response r = http_response::json(200, dump_json(final_response(g.meta, g.tracker, codec)));
    finish_generation();
    respond(r);
  }
}

void http_session::on_error(uint64_t seq, const error& e) {
  if (!gen_ || seq != gen_seq_) return;
  const api_error a = to_api_error(e);
  const bool gone = gen_->client_gone || phase_ == phase::closed;
  const bool head_sent = gen_->head_sent;
  const bool chunked = gen_->chunked;
  gen_.reset();
  if (gone) return;
  if (head_sent) {  // the stream began: report in-band
    ctx_->metrics.count_rejection(rejection_reason(a));
    send(sse_event(api_error_body(a), chunked));
    send(sse_end(chunked));
    complete_response(keep_alive_ && chunked);
  } else {
    respond(ctx_->routes.reject(a));
  }
}

void http_session::finish_generation() {
  gen_.reset();
  ctx_->request_done();
}

void http_session::client_gone() {
  if (gen_ && !gen_->client_gone) {
    gen_->client_gone = true;
    logger("net")->debug("client went away: cancelling {}", gen_->request_id);
    ctx_->eng.cancel(gen_->request_id);
  }
  close();
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
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

}  // namespace troupe
