// http_session, the routing half: a parsed request becomes an http_request and goes to a built-in
// route, an extension route (method and key checked here), the blocking stats routes (off the I/O
// threads), the extension request filters before a generation, or the WebSocket upgrade.
#include "net/http_session.h"

#include <cctype>

#include <boost/asio/post.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "config/log.h"
#include "net/auth.h"        // bearer_from_query, authorized
#include "net/http_request_checks.h"
#include "net/request_filter.h"  // request_metadata, filter_rejection
#include "net/responses_service.h"  // stored_response_route, bearer_token
#include "net/responses_ws_session.h"  // start_responses_ws_session
#include "net/ws_session.h"  // start_ws_session

namespace troupe {

namespace http = beast::http;

namespace {

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

}  // namespace

http_request http_session::make_request(const request_message& msg) const {
  http_request req;
  req.method = std::string(msg.method_string());
  const std::string_view target(msg.target().data(), msg.target().size());
  req.path = std::string(target.substr(0, target.find('?')));
  if (target.find('?') != std::string_view::npos) req.query = std::string(target.substr(target.find('?') + 1));
  req.authorization = std::string(msg[http::field::authorization]);
  if (req.authorization.empty() && req.path == "/v1/ws") req.authorization = bearer_from_query(target);
  req.version = msg.version();
  return req;
}

void http_session::handle_request() {
  cancel_timer();
  phase_ = phase::busy;
  first_request_ = false;
  auto msg = parser_->release();
  parser_.reset();
  pending_response_.reset();  // a Responses request whose filters never answered is gone

  http_request req = make_request(msg);
  req.body = std::move(msg.body());
  const auto origin = msg.find(http::field::origin);
  if (origin != msg.end() && origin_allowed(browser_policy(), sv(origin->value()), sv(msg[http::field::host]))) {
    cors_origin_ = std::string(sv(origin->value()));  // echoed so the page may read the answer
  }
  keep_alive_ = msg.keep_alive() && !shutting_down_;
  logger("net")->debug("{} {}", req.method, req.path);
  if (ctx_->ext) http_meta_ = request_metadata(msg);

  try {
    dispatch(req, msg);
  } catch (const std::exception& e) {  // handlers never throw; this is the last line of defence
    logger("net")->error("{} {} failed: {}", req.method, req.path, e.what());
    if (phase_ == phase::busy && !gen_) respond(ctx_->routes.reject(api_error{500, e.what(), "internal_error", {}, {}}));
  }
}

origin_policy http_session::browser_policy() const {
  const server_options& o = ctx_->opts.server;
  return origin_policy{o.host, o.allowed_hosts, o.allowed_origins};
}

std::optional<http_response> http_session::screen(const http_request& req, const request_message& msg) const {
  const origin_policy policy = browser_policy();
  const auto host = msg.find(http::field::host);  // HTTP/1.0 may have none: no browser sends that
  if (host != msg.end() && !host_allowed(policy, sv(host->value()))) {
    return ctx_->routes.reject(api_error{421, "this server does not answer to Host '" +
                                                  std::string(sv(host->value()).substr(0, 128)) +
                                                  "' (see --allowed-hosts)",
                                         "invalid_request_error", {}, "host_not_allowed"});
  }
  const auto origin = msg.find(http::field::origin);
  if (origin != msg.end() && !origin_allowed(policy, sv(origin->value()), sv(msg[http::field::host]))) {
    return ctx_->routes.reject(api_error{403, "requests from origin '" +
                                                  std::string(sv(origin->value()).substr(0, 128)) +
                                                  "' are not allowed (see --allowed-origins)",
                                         "permission_error", {}, "origin_not_allowed"});
  }
  const route_match m = ctx_->routes.match(req.path);
  const extension_route* xr = m.id == route_id::unknown && ctx_->ext ? ctx_->ext->find_route(req.path) : nullptr;
  if (req.method == "OPTIONS" && origin != msg.end() && (xr || m.id != route_id::unknown)) {
    // A CORS preflight from an allowed origin: what it may send. No API key is asked here:
    // browsers never send credentials with a preflight.
    http_response r;
    r.status = 204;
    r.content_type = "text/plain";
    r.headers.emplace_back("Access-Control-Allow-Methods", xr ? (xr->method == "*" ? "GET, POST" : xr->method)
                                                              : std::string(m.method));
    r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
    r.headers.emplace_back("Access-Control-Max-Age", "600");
    return r;
  }
  if (!xr) {  // built-in routes take precedence
    if (auto denial = ctx_->routes.admit(m, req)) return denial;
    if (req.method == "POST" && !is_json_content_type(sv(msg[http::field::content_type]))) {
      // A browser sends text/plain and form bodies cross-origin without asking (no preflight).
      return ctx_->routes.reject(api_error{415, "POST " + req.path + " needs Content-Type: application/json",
                                           "invalid_request_error", {}, "unsupported_media_type"});
    }
    return std::nullopt;
  }
  if (xr->method != "*" && req.method != xr->method) {
    http_response resp = ctx_->routes.reject(api_error{405, "method " + req.method + " is not allowed on " + req.path +
                                                                "; use " + xr->method,
                                                        "invalid_request_error", {}, "method_not_allowed"});
    resp.headers.emplace_back("Allow", xr->method);
    return resp;
  }
  if (xr->needs_auth && !authorized(ctx_->opts.server.api_key, req.authorization)) {
    return ctx_->routes.reject(api_error{401, "invalid or missing API key (Authorization: Bearer <key>)",
                                         "authentication_error", {}, "invalid_api_key"});
  }
  return std::nullopt;
}

void http_session::dispatch(const http_request& req, request_message& msg) {
  if (auto denial = screen(req, msg)) {
    respond(*denial);
    return;
  }
  const route_match m = ctx_->routes.match(req.path);
  if (m.id == route_id::unknown) {  // screen() let it through: an extension route
    run_extension_route(*ctx_->ext->find_route(req.path), req);
    return;
  }
  switch (m.id) {
    case route_id::websocket: {
      if (!beast::websocket::is_upgrade(msg)) {
        respond(ctx_->routes.reject(bad_request("GET /v1/ws expects a WebSocket upgrade")));
        return;
      }
      upgrade_ = std::move(msg);
      if (reading_) {
        socket_.cancel();  // on_read_some hands off once the pending read has returned
      } else {
        hand_off_upgrade();
      }
      return;
    }
    case route_id::responses:
      if (req.method == "GET") {
        if (!beast::websocket::is_upgrade(msg)) {
          respond(ctx_->routes.reject(bad_request("GET /v1/responses expects a WebSocket upgrade (POST creates a response)")));
          return;
        }
        upgrade_ = std::move(msg);
        upgrade_responses_ = true;
        if (reading_) {
          socket_.cancel();
        } else {
          hand_off_upgrade();
        }
        return;
      }
      start_response(req);
      return;
    case route_id::response_object:
      respond(stored_response_route(ctx_->responses, req, bearer_token(req.authorization)));
      return;
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

void http_session::hand_off_upgrade() {
  // Bytes the client sent after the upgrade request (its first frames) are in buffer_: they go
  // with the socket, or the WebSocket session would wait for a message that already came.
  phase_ = phase::closed;  // the socket now belongs to the WebSocket session (it counts it)
  ctx_->release_connection(counted_);
  cancel_timer();
  write_timer_.cancel();  // armed lazily (see arm_write_timer): it must not keep this session alive
  const auto early = buffer_.data();
  std::string buffered(static_cast<const char*>(early.data()), early.size());
  buffer_.consume(buffer_.size());
  if (upgrade_responses_) {
    start_responses_ws_session(release_plain(socket_), ctx_, std::move(*upgrade_), std::move(buffered));
  } else {
    start_ws_session(release_plain(socket_), ctx_, std::move(*upgrade_), std::move(buffered));
  }
  upgrade_.reset();
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

// -- extension routes and filters ------------------------------------------------------------

void http_session::run_extension_route(const extension_route& r, const http_request& req) {
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
        self->pending_response_.reset();
        self->respond(self->ctx_->routes.reject(filter_rejection(v)));
        return;
      }
      if (v.rewrite) pending->gen.params = v.params;
      self->submit_generation(std::move(*pending));
    });
  });
}

}  // namespace troupe
