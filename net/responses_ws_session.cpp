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
#include "net/ws_connection.h"

namespace troupe {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;
using json = nlohmann::json;

namespace {

class responses_ws_session final : public session_base,
                                   public std::enable_shared_from_this<responses_ws_session>,
                                   public ws_connection<responses_ws_session> {
 public:
  responses_ws_session(tcp::socket socket, std::shared_ptr<server_context> ctx)
      : ws_connection(std::move(socket), std::move(ctx), "responses ws") {}
  ~responses_ws_session() override { unpin_unstored_last(); }

  void run(beast::http::request<beast::http::string_body> req, std::string buffered) {
    owner_ = bearer_token(std::string_view(req[beast::http::field::authorization].data(),
                                           req[beast::http::field::authorization].size()));
    meta_ = request_metadata(req);
    accept(req, buffered);
  }

  void shutdown() override {
    boost::asio::post(strand(), [self = shared_from_this()] {
      self->shutting_down_ = true;
      if (!self->run_) self->do_close();
    });
  }

 private:
  friend class ws_connection<responses_ws_session>;

  void on_message_exception(const std::exception& e) {
    send_error(api_error{500, e.what(), "server_error", {}, "server_error"});
  }
  // The socket failed or the client stopped reading: so goes its response.
  void on_client_gone() { cancel_running(); }

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
      boost::asio::post(self->strand(), [self, seq, v = std::move(v)] { self->on_verdict(seq, v); });
    });
  }

  void on_verdict(uint64_t seq, const filter_verdict& v) {
    if (!run_ || seq != seq_) return;
    if (closed() || !v.accept || shutting_down_) {
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
          boost::asio::post(self->strand(), [self, seq, ev] { self->on_event(seq, ev); });
        },
        [self, seq](const error& e) {
          boost::asio::post(self->strand(), [self, seq, e] { self->on_error(seq, e); });
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
    last_ = settle_response(*run_, ctx_->responses, ctx_->cache, !closed());
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

  void send(const json& frame) { send_text(dump_json(frame)); }

  http_metadata meta_;
  std::string owner_;                          // the API key of the upgrade request
  std::unique_ptr<response_run> run_;          // the response in flight (one at a time)
  std::shared_ptr<const stored_response> last_;  // the connection's last response
  bool last_stored_ = true;    // last_ is in the store (its pin is the store's to release)
  std::optional<request_timing> timing_;
  uint64_t seq_ = 0;         // tells a stale engine callback from the current response's
  int64_t error_seq_ = 0;    // sequence numbers of standalone error events
  bool submitted_ = false;
  bool cancel_requested_ = false;
  bool started_ = false;     // response.created sent
  bool shutting_down_ = false;
};

}  // namespace

void start_responses_ws_session(tcp::socket socket, std::shared_ptr<server_context> ctx,
                                beast::http::request<beast::http::string_body> upgrade, std::string buffered) {
  std::make_shared<responses_ws_session>(std::move(socket), std::move(ctx))->run(std::move(upgrade), std::move(buffered));
}

}  // namespace troupe
