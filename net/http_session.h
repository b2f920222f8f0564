// http_session: one HTTP/1.1 connection on its own strand (Beast chat-multi style: do_x/on_x
// halves, a single-writer queue fed by asio::post from engine callbacks). Owns the header, idle,
// body and write timeouts, body and queued-output limits, pipelining, SSE streaming, and
// cancel-on-disconnect (a read stays pending while a generation runs, so a closed socket is
// noticed at once). Upgrades to ws_session. Implemented in three files: http_session.cpp
// (connection: read, parse, write, timers), http_session_routing.cpp (request checks, dispatch,
// extension routes and filters) and http_session_generation.cpp (generations, SSE).
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "net/event_inbox.h"
#include "net/handler_arena.h"
#include "net/http_request_checks.h"
#include "net/openai_response.h"
#include "net/output_queue.h"
#include "net/server_context.h"

namespace troupe {

namespace beast = boost::beast;
using tcp = boost::asio::ip::tcp;

struct http_generation;  // net/http_generation.h
struct response_run;     // net/responses_service.h

class http_session final : public session_base, public std::enable_shared_from_this<http_session> {
 public:
  http_session(tcp::socket socket, std::shared_ptr<server_context> ctx);
  ~http_session() override;

  void run();                               // serve requests
  void reject(const http_response& resp);   // answer once and close (too many connections)
  void shutdown() override;

 private:
  // idle: waiting for the first byte of a request; header/body: reading it; busy: handling it
  // (a generation runs or a response is being written); closing: lingering after the last write.
  enum class phase { idle, header, body, busy, closing, closed };

  void do_read_some();
  void on_read_some(beast::error_code ec, std::size_t n);
  void begin_request();            // a new parser over the buffered bytes
  void parse_buffered();           // feed buffer_ to the parser; read more or handle the request
  bool on_header();                // checks once the header is in; false: answered and closing
  void on_parse_error(beast::error_code ec);
  void refuse(const http_response& r);  // answer and close: the rest of the request stays unread

  using request_message = beast::http::request<beast::http::string_body>;
  http_request make_request(const request_message& msg) const;  // all but the body
  void handle_request();
  void dispatch(const http_request& req, request_message& msg);
  // Host, Origin, route, method, API key and Content-Type checks: run before a body is read when
  // the client waits for `100 Continue`, and again on the whole request. nullopt: go on; else the
  // answer (a refusal, or the 204 to an allowed CORS preflight).
  std::optional<http_response> screen(const http_request& req, const request_message& msg) const;
  origin_policy browser_policy() const;
  void hand_off_upgrade();                     // the socket and buffered bytes to ws_session
  void run_blocking(route_id id);
  void start_generation(openai_request req);   // through the request filters, if any
  void submit_generation(openai_request req);  // to the engine
  // The Responses API (http_session_responses.cpp): a POST /v1/responses becomes a response_run
  // that goes through the filters and the engine like a chat request; its events are shaped by it.
  void start_response(const http_request& req);
  void on_response_event(const generation_event& ev);
  void on_response_error(const api_error& a);
  void run_extension_route(const extension_route& r, const http_request& req);
  void drain_events();  // on the strand: the events the engine queued in inbox_
  void on_event(uint64_t seq, const generation_event& ev);
  void on_error(uint64_t seq, const error& e);
  void finish_generation();
  void client_gone();

  void send(std::string bytes);
  void send_sse(std::string_view data, bool chunked);  // one SSE event, framed in the queue's buffer
  void queued(bool behind_others);  // after an append: the output bound, then write if idle
  void respond(http_response r);                  // a whole response, then complete_response
  void complete_response(bool keep_alive);       // after the queued bytes: next request or close
  void do_write();
  void on_write(beast::error_code ec, std::size_t n);
  void after_response();
  void arm_write_timer();                   // --write-timeout without progress: drop the client
  void wait_write_timer();
  void drop_slow_client(const char* reason);  // counted in /metrics; cancels the generation

  void arm_timer(double seconds);
  void cancel_timer();
  void on_timer(uint64_t seq);
  void linger_close();
  void close();

  // The socket on its strand's concrete type: a type-erased executor (tcp::socket's) copies the
  // strand to the heap for every operation, that is for every streamed token.
  using session_strand = boost::asio::strand<boost::asio::io_context::executor_type>;
  using session_socket = boost::asio::basic_stream_socket<tcp, session_strand>;
  static session_socket adopt(tcp::socket s);       // the accepted socket, moved onto session_strand
  static tcp::socket release_plain(session_socket& s);  // and back, for the WebSocket sessions
  session_socket socket_;
  boost::asio::any_io_executor strand_;  // the socket's strand (kept across the WebSocket upgrade)
  std::shared_ptr<server_context> ctx_;
  boost::asio::steady_timer timer_;
  beast::flat_buffer buffer_;               // received, not yet parsed
  std::array<char, 4096> read_buf_;         // the pending read's target (copied into buffer_)
  std::optional<beast::http::request_parser<beast::http::string_body>> parser_;
  std::optional<request_message> upgrade_;  // a WebSocket upgrade waiting for the pending read
  bool upgrade_responses_ = false;          // the upgrade is to /v1/responses (not /v1/ws)
  std::unique_ptr<response_run> pending_response_;  // a Responses request on its way to submit_generation
  boost::asio::steady_timer write_timer_;
  output_queue out_;  // bytes to write, coalesced (bounded by --max-queued-output-bytes)
  std::string chunk_;  // the SSE chunk being built (reused: no allocation per token)
  event_inbox inbox_;  // engine events on their way to the strand
  std::vector<event_inbox::entry> drained_;  // the events being handled (reused slots)
  std::shared_ptr<handler_arena> arena_ = std::make_shared<handler_arena>();  // drain posts and writes
  std::chrono::steady_clock::time_point write_deadline_;  // the write in flight must progress by then
  bool write_timer_armed_ = false;
  std::string cors_origin_;        // an allowed Origin of the request, echoed in CORS headers
  phase phase_ = phase::idle;
  bool reading_ = false;           // an async read is outstanding
  bool writing_ = false;
  bool response_complete_ = false; // the response's last bytes are queued
  bool keep_alive_ = true;
  bool shutting_down_ = false;     // listener stop: close after the current response
  bool first_request_ = true;
  bool head_request_ = false;
  unsigned version_ = 11;
  uint64_t timer_seq_ = 0;
  uint64_t gen_seq_ = 0;
  uint64_t registry_id_ = 0;
  bool counted_ = true;  // in ctx_->num_connections until the socket closes or is handed over
  std::unique_ptr<http_generation> gen_;  // the request in flight
  http_metadata http_meta_;  // of the request being handled (filled only when extensions run)
};

}  // namespace troupe
