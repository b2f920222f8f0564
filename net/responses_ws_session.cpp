// responses_ws_session: the Responses API over one WebSocket (see responses_ws_session.h). A
// `response.create` event runs like a streamed POST /v1/responses (filters, engine, store); its
// events leave as text frames through a single-writer queue bounded in bytes and write time. A
// malformed or unknown event gets an `error` event and the socket stays usable. The connection
// remembers its last response, so previous_response_id continues it even with store: false.
// Closing the socket (or a `response.cancel` event) cancels the response in flight.
#include "net/responses_ws_session.h"

#include <deque>
#include <optional>
#include <string>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "config/log.h"
#include "net/openai_response.h"
#include "net/request_filter.h"
#include "net/responses_service.h"

namespace troupe {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;
using json = nlohmann::json;

namespace {

class responses_ws_session final : public session_base, public std::enable_shared_from_this<responses_ws_session> {
 public:
  responses_ws_session(tcp::socket socket, std::shared_ptr<server_context> ctx)
      : ws_(std::move(socket)), strand_(ws_.get_executor()), ctx_(std::move(ctx)), write_timer_(strand_) {
    ctx_->num_connections.fetch_add(1);
  }
  ~responses_ws_session() override {
    unpin_unstored_last();
    ctx_->remove_session(registry_id_);
    ctx_->num_connections.fetch_sub(1);
  }

  void run(beast::http::request<beast::http::string_body> req, std::string buffered) {
    registry_id_ = ctx_->add_session(weak_from_this());
    owner_ = bearer_token(std::string_view(req[beast::http::field::authorization].data(),
                                           req[beast::http::field::authorization].size()));
    meta_ = request_metadata(req);
    websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(beast::role_type::server);
    t.handshake_timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(ctx_->opts.server.header_timeout_s));
    ws_.set_option(t);
    ws_.read_message_max(ctx_->opts.server.max_body_bytes);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(beast::http::field::server, "troupe"); }));
    if (buffered.empty()) {
      ws_.async_accept(req, beast::bind_front_handler(&responses_ws_session::on_accept, shared_from_this()));
      return;
    }
    // Early frames travel as raw bytes after the handshake's fields (as in ws_session.cpp).
    std::string raw = "GET / HTTP/1.1\r\n";
    for (auto f : {beast::http::field::host, beast::http::field::upgrade, beast::http::field::connection,
                   beast::http::field::sec_websocket_key, beast::http::field::sec_websocket_version,
                   beast::http::field::sec_websocket_extensions}) {
      const auto [first, last] = req.equal_range(f);
      for (auto v = first; v != last; ++v) {
        raw.append(v->name_string().data(), v->name_string().size()).append(": ");
        raw.append(v->value().data(), v->value().size()).append("\r\n");
      }
    }
    raw += "\r\n" + buffered;
    ws_.async_accept(boost::asio::buffer(raw),
                     beast::bind_front_handler(&responses_ws_session::on_accept, shared_from_this()));
  }

  void shutdown() override {
    boost::asio::post(strand_, [self = shared_from_this()] {
      self->shutting_down_ = true;
      if (!self->run_) self->do_close();
    });
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) {
      closed_ = true;
      return;
    }
    do_read();
  }

  void do_read() {
    ws_.async_read(buffer_, beast::bind_front_handler(&responses_ws_session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) {  // closed, reset, too big, timed out: the client is gone, so is its response
      if (!closed_) cancel_running();
      closed_ = true;
      return;
    }
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    try {
      handle_message(text);
    } catch (const std::exception& e) {  // never let a frame take the I/O thread down
      send_error(api_error{500, e.what(), "server_error", {}, "server_error"});
    }
    if (!closed_) do_read();
  }

  void handle_message(const std::string& text) {
    auto parsed = parse_json_body(text, ctx_->routes.context().max_json_depth);
    if (is_error(parsed)) {
      api_error e = std::get<api_error>(parsed);
      if (e.code.empty()) e.message = "an event must be a JSON object";
      send_error(e);
      return;
    }
    const json& msg = std::get<json>(parsed);
    auto type = msg.find("type");
    if (type == msg.end() || !type->is_string()) {
      send_error(bad_request("type must be \"response.create\" or \"response.cancel\"", "type"));
    } else if (*type == "response.create") {
      create(msg, text);
    } else if (*type == "response.cancel") {
      if (!run_) {
        send_error(api_error{400, "no response is in progress", "invalid_request_error", "type", "no_active_response"});
      } else if (submitted_) {
        ctx_->eng.cancel(run_->gen.gen.request_id);
      } else {
        cancel_requested_ = true;
      }
    } else {
      send_error(bad_request("unsupported event type " + describe_json(*type), "type", "unsupported"));
    }
  }

  void create(const json& msg, const std::string& text) {
    if (run_) {
      send_error(api_error{400, "a response is already in progress on this connection; wait for it to finish",
                           "invalid_request_error", {}, "response_in_progress"});
      return;
    }
    if (shutting_down_) {
      send_error(to_api_error(make_error(errc::draining, "the server is shutting down")));
      return;
    }
    auto prepared = prepare_response(msg, true, ctx_->responses, owner_, ctx_->routes.context(), last_.get(), text);
    if (is_error(prepared)) {
      send_error(std::get<api_error>(prepared));
      return;
    }
    run_ = std::move(std::get<std::unique_ptr<response_run>>(prepared));
    run_->gen.gen.request_id = ctx_->new_request_id();
    const uint64_t seq = ++seq_;
    submitted_ = false;
    cancel_requested_ = false;
    started_ = false;
    if (!ctx_->ext || !ctx_->ext->has_filters()) {
      submit(seq);
      return;
    }
    auto self = shared_from_this();
    ctx_->ext->filter(filter_request{run_->gen.gen, meta_}, [self, seq](filter_verdict v) {
      boost::asio::post(self->strand_, [self, seq, v = std::move(v)] { self->on_verdict(seq, v); });
    });
  }

  void on_verdict(uint64_t seq, const filter_verdict& v) {
    if (!run_ || seq != seq_) return;
    if (closed_ || !v.accept || shutting_down_) {
      run_.reset();
      if (!v.accept) send_error(filter_rejection(v));
      if (shutting_down_) do_close();
      return;
    }
    if (v.rewrite) run_->gen.gen.params = v.params;
    submit(seq);
  }

  void submit(uint64_t seq) {
    submitted_ = true;
    timing_.emplace(ctx_->metrics, 1);
    auto self = shared_from_this();
    generation_request g = run_->gen.gen;
    ctx_->submit(
        std::move(g), meta_,
        [self, seq](const generation_event& ev) {
          boost::asio::post(self->strand_, [self, seq, ev] { self->on_event(seq, ev); });
        },
        [self, seq](const error& e) {
          boost::asio::post(self->strand_, [self, seq, e] { self->on_error(seq, e); });
        });
    if (cancel_requested_) ctx_->eng.cancel(run_->gen.gen.request_id);
  }

  void on_event(uint64_t seq, const generation_event& ev) {
    if (!run_ || seq != seq_) return;
    timing_->on_event(ev);
    if (!started_) {
      started_ = true;
      for (const auto& e : run_->builder.start()) send(e);
    }
    for (const auto& e : run_->builder.on_event(ev)) send(e);
    if (!run_->builder.done()) return;
    timing_->on_done();
    finish();
  }

  void on_error(uint64_t seq, const error& err) {
    if (!run_ || seq != seq_) return;
    const api_error a = to_api_error(err);
    if (!started_) {
      send_error(a);  // never started (overloaded, draining, ...): an error event, no response
      run_.reset();
    } else {
      for (const auto& e : run_->builder.fail(a)) send(e);
      finish();
    }
    if (shutting_down_) do_close();
  }

  void finish() {
    // The socket's previous response, unless stored, is out of reach now: its pin goes (when this
    // response continued it, settle_response already let it go).
    unpin_unstored_last();
    last_ = settle_response(*run_, ctx_->responses, ctx_->cache, !closed_);
    last_stored_ = run_->params.store;
    run_.reset();
    ctx_->request_done();
    if (shutting_down_) do_close();
  }

  void cancel_running() {
    if (run_ && submitted_) ctx_->eng.cancel(run_->gen.gen.request_id);
    unpin_unstored_last();  // the socket is going: what only it held is released
  }

  void unpin_unstored_last() {
    if (last_ && !last_stored_ && ctx_->cache) ctx_->cache->unpin(conversation_key(last_->id));
    if (!last_stored_) last_stored_ = true;  // once
  }

  void send_error(const api_error& e) {
    ctx_->metrics.count_rejection(rejection_reason(e));
    send(responses_error_event(e, error_seq_++));
  }

  // Output flow control as in ws_session.cpp: too much unwritten output, or a write without
  // progress for --write-timeout, disconnects the client and cancels its response.
  void send(const json& frame) {
    if (closed_) return;
    queue_.push_back(dump_json(frame));
    queued_bytes_ += queue_.back().size();
    if (queue_.size() > 1 && queued_bytes_ > ctx_->opts.server.max_queued_output_bytes) {
      drop_slow_client("queue_full");
      return;
    }
    if (!writing_) do_write();
  }

  void do_write() {
    writing_ = true;
    const uint64_t write = ++write_seq_;
    write_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(ctx_->opts.server.write_timeout_s)));
    write_timer_.async_wait([self = shared_from_this(), write](beast::error_code ec) {
      if (ec || !self->writing_ || self->write_seq_ != write) return;
      self->drop_slow_client("write_timeout");
    });
    ws_.text(true);
    ws_.async_write(boost::asio::buffer(queue_.front()),
                    beast::bind_front_handler(&responses_ws_session::on_write, shared_from_this()));
  }

  void drop_slow_client(const char* reason) {
    if (closed_) return;
    logger("net")->warn("responses ws: disconnecting a client that does not read its output ({})", reason);
    ctx_->metrics.count_slow_client("ws", reason);
    closed_ = true;
    cancel_running();
    while (queue_.size() > (writing_ ? 1u : 0u)) {
      queued_bytes_ -= queue_.back().size();
      queue_.pop_back();
    }
    beast::error_code ec;
    beast::get_lowest_layer(ws_).close(ec);
  }

  void on_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    write_timer_.cancel();
    if (ec || closed_) {
      queue_.clear();
      queued_bytes_ = 0;
      if (!closed_) cancel_running();
      closed_ = true;
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

  void do_close() {
    if (closed_) return;
    if (writing_) {
      close_pending_ = true;
      return;
    }
    closed_ = true;
    ws_.async_close(websocket::close_code::going_away, [self = shared_from_this()](beast::error_code) {});
  }

  websocket::stream<tcp::socket> ws_;
  boost::asio::any_io_executor strand_;
  std::shared_ptr<server_context> ctx_;
  beast::flat_buffer buffer_;
  boost::asio::steady_timer write_timer_;
  std::deque<std::string> queue_;
  uint64_t queued_bytes_ = 0;
  uint64_t write_seq_ = 0;
  http_metadata meta_;
  std::string owner_;                          // the API key of the upgrade request
  std::unique_ptr<response_run> run_;          // the response in flight (one at a time)
  std::shared_ptr<const stored_response> last_;  // the connection's last response
  bool last_stored_ = true;    // last_ is in the store (its pin is the store's to release)
  std::optional<request_timing> timing_;
  uint64_t seq_ = 0;         // tells a stale engine callback from the current response's
  int64_t error_seq_ = 0;    // sequence numbers of standalone error events
  uint64_t registry_id_ = 0;
  bool submitted_ = false;
  bool cancel_requested_ = false;
  bool started_ = false;     // response.created sent
  bool writing_ = false;
  bool closed_ = false;
  bool close_pending_ = false;
  bool shutting_down_ = false;
};

}  // namespace

void start_responses_ws_session(tcp::socket socket, std::shared_ptr<server_context> ctx,
                                beast::http::request<beast::http::string_body> upgrade, std::string buffered) {
  std::make_shared<responses_ws_session>(std::move(socket), std::move(ctx))->run(std::move(upgrade), std::move(buffered));
}

}  // namespace troupe
