// ws_connection: the WebSocket plumbing shared by /v1/ws (ws_session.cpp) and the Responses API's
// socket (responses_ws_session.cpp): the handshake (with early frames), a read loop that hands each
// message to the session, a single-writer output queue bounded in bytes and in write time that
// disconnects a client that stops reading, and an orderly close. A CRTP base: the session supplies
// what the protocol does. Only those two files include it (it compiles Beast's WebSocket templates).
#pragma once

#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <string>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "config/log.h"
#include "net/server_context.h"

namespace troupe {

// Session must derive from session_base and std::enable_shared_from_this<Session>, and provide
//   void handle_message(const std::string& text);         // one client message, on the strand
//   void on_message_exception(const std::exception& e);   // handle_message threw
//   void on_client_gone();                                // socket failed or client dropped: cancel all
// Every member runs on the connection's strand.
template <class Session>
class ws_connection {
 public:
  using tcp = boost::asio::ip::tcp;

  ws_connection(tcp::socket socket, std::shared_ptr<server_context> ctx, const char* log_name)
      : ctx_(std::move(ctx)), ws_(std::move(socket)), strand_(ws_.get_executor()), write_timer_(strand_),
        log_name_(log_name) {
    ctx_->num_connections.fetch_add(1);
  }
  ~ws_connection() {
    ctx_->remove_session(registry_id_);
    ctx_->num_connections.fetch_sub(1);
  }
  ws_connection(const ws_connection&) = delete;
  ws_connection& operator=(const ws_connection&) = delete;

 protected:
  using request_type = boost::beast::http::request<boost::beast::http::string_body>;

  // Registers the session for shutdown and accepts the handshake of `req`, then reads.
  void accept(const request_type& req, const std::string& buffered) {
    namespace beast = boost::beast;
    namespace websocket = beast::websocket;
    registry_id_ = ctx_->add_session(self().weak_from_this());
    websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(beast::role_type::server);
    t.handshake_timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(ctx_->opts.server.header_timeout_s));
    ws_.set_option(t);
    ws_.read_message_max(ctx_->opts.server.max_body_bytes);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(beast::http::field::server, "troupe"); }));
    if (buffered.empty()) {
      ws_.async_accept(req, beast::bind_front_handler(&ws_connection::on_accept, self().shared_from_this()));
      return;
    }
    // Beast accepts either a parsed request or raw bytes that begin with one; early frames can
    // only travel as raw bytes, so the handshake's fields are written back in front of them.
    // Beast copies them into its read buffer (1536 bytes: larger early input fails the handshake).
    handshake_ = "GET / HTTP/1.1\r\n";
    for (auto f : {beast::http::field::host, beast::http::field::upgrade, beast::http::field::connection,
                   beast::http::field::sec_websocket_key, beast::http::field::sec_websocket_version,
                   beast::http::field::sec_websocket_extensions}) {
      const auto [first, last] = req.equal_range(f);
      for (auto v = first; v != last; ++v) {
        handshake_.append(v->name_string().data(), v->name_string().size()).append(": ");
        handshake_.append(v->value().data(), v->value().size()).append("\r\n");
      }
    }
    handshake_ += "\r\n" + buffered;
    ws_.async_accept(boost::asio::buffer(handshake_),
                     beast::bind_front_handler(&ws_connection::on_accept, self().shared_from_this()));
  }

  // Output flow control: a client that asks but does not read would have its frames pile up here
  // without bound. Past --max-queued-output-bytes of unwritten frames, or a write that makes no
  // progress for --write-timeout, the client is disconnected and its work cancelled.
  void send_text(std::string frame) {
    if (closed_) return;
    queue_.push_back(std::move(frame));
    queued_bytes_ += queue_.back().size();
    if (queue_.size() > 1 && queued_bytes_ > ctx_->opts.server.max_queued_output_bytes) {  // behind
      drop_slow_client("queue_full", "more than " + std::to_string(ctx_->opts.server.max_queued_output_bytes) +
                                         " bytes of output queued");
      return;
    }
    if (!writing_) do_write();
  }

  // Closes after the queued frames are out.
  void do_close() {
    if (closed_) return;
    if (writing_) {  // let the last frames out first
      close_pending_ = true;
      return;
    }
    closed_ = true;
    ws_.async_close(boost::beast::websocket::close_code::going_away,
                    [keep = self().shared_from_this()](boost::beast::error_code) {});
  }

  bool closed() const { return closed_; }
  const boost::asio::any_io_executor& strand() const { return strand_; }

  std::shared_ptr<server_context> ctx_;

 private:
  Session& self() { return static_cast<Session&>(*this); }

  void on_accept(boost::beast::error_code ec) {
    handshake_.clear();
    if (ec) {
      closed_ = true;
      return;
    }
    do_read();
  }

  void do_read() {
    ws_.async_read(buffer_, boost::beast::bind_front_handler(&ws_connection::on_read, self().shared_from_this()));
  }

  void on_read(boost::beast::error_code ec, std::size_t) {
    if (ec) {  // closed, reset, too big, timed out (or dropped as a slow reader): the client is gone
      client_gone();
      return;
    }
    std::string text = boost::beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    try {
      self().handle_message(text);
    } catch (const std::exception& e) {  // never let a frame take the I/O thread down
      self().on_message_exception(e);
    }
    if (!closed_) do_read();
  }

  void do_write() {
    writing_ = true;
    const uint64_t write = ++write_seq_;
    write_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(ctx_->opts.server.write_timeout_s)));
    write_timer_.async_wait([keep = self().shared_from_this(), write](boost::beast::error_code ec) {
      ws_connection& c = *keep;
      if (ec || !c.writing_ || c.write_seq_ != write) return;  // cancelled or finished in time
      c.drop_slow_client("write_timeout", "a write made no progress for " +
                                              std::to_string(c.ctx_->opts.server.write_timeout_s) + " s");
    });
    ws_.text(true);
    ws_.async_write(boost::asio::buffer(queue_.front()),
                    boost::beast::bind_front_handler(&ws_connection::on_write, self().shared_from_this()));
  }

  void drop_slow_client(const char* reason, const std::string& why) {
    if (closed_) return;
    logger("net")->warn("{}: disconnecting a client that does not read its output ({})", log_name_, why);
    ctx_->metrics.count_slow_client("ws", reason);
    client_gone();
    // The frame being written stays until its write completes (Beast holds a buffer into it).
    while (queue_.size() > (writing_ ? 1u : 0u)) {
      queued_bytes_ -= queue_.back().size();
      queue_.pop_back();
    }
    boost::beast::error_code ec;
    boost::beast::get_lowest_layer(ws_).close(ec);  // fails the pending read and write: nothing more is sent
  }

  void on_write(boost::beast::error_code ec, std::size_t) {
    writing_ = false;
    write_timer_.cancel();
    if (ec || closed_) {
      queue_.clear();
      queued_bytes_ = 0;
      client_gone();
      return;
    }
    queued_bytes_ -= queue_.front().size();
    queue_.pop_front();
    if (!queue_.empty()) {
      do_write();
    } else if (close_pending_) {
      do_close();
    }
  }

  // The first failure closes the connection and cancels the session's work, once.
  void client_gone() {
    if (closed_) return;
    closed_ = true;
    self().on_client_gone();
  }

  boost::beast::websocket::stream<tcp::socket> ws_;
  boost::asio::any_io_executor strand_;
  boost::beast::flat_buffer buffer_;
  boost::asio::steady_timer write_timer_;  // armed while a write is in flight
  std::deque<std::string> queue_;
  uint64_t queued_bytes_ = 0;  // sum of queue_'s sizes
  uint64_t write_seq_ = 0;     // tells a stale write timer from the current one
  uint64_t registry_id_ = 0;
  std::string handshake_;      // the raw handshake + early frames, alive until the accept completes
  const char* log_name_;
  bool writing_ = false;
  bool closed_ = false;
  bool close_pending_ = false;
};

}  // namespace troupe
