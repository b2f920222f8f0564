// ws_session: a WebSocket connection on its own strand running several generations at once
// (docs/websocket.md). Generations pass the extension request filters as HTTP ones do; engine
// callbacks are posted onto the strand; frames leave through a single-writer queue bounded in bytes
// and in write time; a closed socket, or a client that stops reading, cancels every generation.
#include "net/ws_session.h"

#include <deque>
#include <string>
#include <unordered_map>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "config/log.h"
#include "net/openai_response.h"
#include "net/request_filter.h"

namespace troupe {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr size_t k_max_id_bytes = 256;

class ws_session final : public session_base, public std::enable_shared_from_this<ws_session> {
 public:
  ws_session(tcp::socket socket, std::shared_ptr<server_context> ctx)
      : ws_(std::move(socket)), strand_(ws_.get_executor()), ctx_(std::move(ctx)), write_timer_(strand_) {
    ctx_->num_connections.fetch_add(1);
  }
  ~ws_session() override {
    ctx_->remove_session(registry_id_);
    ctx_->num_connections.fetch_sub(1);
  }

  void run(beast::http::request<beast::http::string_body> req, std::string buffered) {
    registry_id_ = ctx_->add_session(weak_from_this());
    if (ctx_->ext) meta_ = request_metadata(req);  // what request filters see of every generation
    websocket::stream_base::timeout t = websocket::stream_base::timeout::suggested(beast::role_type::server);
    t.handshake_timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(ctx_->opts.server.header_timeout_s));
    ws_.set_option(t);
    ws_.read_message_max(ctx_->opts.server.max_body_bytes);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(beast::http::field::server, "troupe"); }));
    if (buffered.empty()) {
      ws_.async_accept(req, beast::bind_front_handler(&ws_session::on_accept, shared_from_this()));
      return;
    }
    // Beast accepts either a parsed request or raw bytes that begin with one; early frames can
    // only travel as raw bytes, so the handshake's fields are written back in front of them.
    // Beast copies them into its read buffer (1536 bytes: larger early input fails the handshake).
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
                     beast::bind_front_handler(&ws_session::on_accept, shared_from_this()));
  }

  void shutdown() override {
    boost::asio::post(strand_, [self = shared_from_this()] {
      self->shutting_down_ = true;
      if (self->gens_.empty()) self->do_close();
    });
  }

 private:
  struct generation {
    generation(server_metrics& m, const openai_request& r, std::string rid, uint64_t s)
        : request_id(std::move(rid)), seq(s), meta(make_response_meta(r, request_id)),
          tracker(r.gen.n, static_cast<int32_t>(r.gen.prompt_ids.size()), r.tool_calls), timing(m, r.gen.n) {}
    std::string request_id;
    uint64_t seq;
    response_meta meta;
    generation_tracker tracker;
    request_timing timing;
    bool submitted = false;         // false while the request filters decide
    bool cancel_requested = false;  // a cancel that came before submission
  };

  void on_accept(beast::error_code ec) {
    if (ec) {
      closed_ = true;
      return;
    }
    do_read();
  }

  void do_read() {
    ws_.async_read(buffer_, beast::bind_front_handler(&ws_session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) {  // closed, reset, too big, timed out (or dropped as a slow reader): the client is gone
      if (!closed_) cancel_all();
      closed_ = true;
      return;
    }
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    try {
      handle_message(text);
    } catch (const std::exception& e) {  // never let a frame take the I/O thread down
      send_error(nullptr, api_error{500, e.what(), "internal_error", {}, {}});
    }
    if (!closed_) do_read();
  }

  void handle_message(const std::string& text) {
    auto parsed = parse_json_body(text, ctx_->routes.context().max_json_depth);
    if (is_error(parsed)) {
      api_error e = std::get<api_error>(parsed);
      if (e.code.empty()) e.message = "a message must be a JSON object";
      send_error(nullptr, e);
      return;
    }
    const json& msg = std::get<json>(parsed);
    auto type = msg.find("type");
    if (type == msg.end() || !type->is_string()) {
      send_error(id_of(msg), bad_request("type must be \"generate\" or \"cancel\"", "type"));
      return;
    }
    if (*type == "generate") {
      generate(msg, text);
    } else if (*type == "cancel") {
      cancel(msg);
    } else {
      send_error(id_of(msg), bad_request("unknown message type " + describe_json(*type), "type"));
    }
  }

  static json id_of(const json& msg) {
    auto it = msg.find("id");
    return it != msg.end() && it->is_string() ? *it : json(nullptr);
  }

  void generate(const json& msg, const std::string& raw) {
    json id = id_of(msg);
    if (id.is_null() || id.get_ref<const std::string&>().empty() || id.get_ref<const std::string&>().size() > k_max_id_bytes) {
      send_error(nullptr, bad_request("generate needs a non-empty string id", "id"));
      return;
    }
    const std::string cid = id.get<std::string>();
    if (gens_.count(cid)) {
      send_error(id, bad_request("a generation with id '" + cid + "' is already running", "id", "duplicate_id"));
      return;
    }
    if (shutting_down_) {
      send_error(id, to_api_error(make_error(errc::draining, "the server is shutting down")));
      return;
    }
    if (static_cast<int32_t>(gens_.size()) >= ctx_->opts.ws_max_generations) {
      send_error(id, api_error{429, "at most " + std::to_string(ctx_->opts.ws_max_generations) +
                                        " generations run at once on one connection",
                               "rate_limit_error", {}, "too_many_generations"});
      return;
    }
    const api_kind kind = msg.contains("messages") ? api_kind::chat : api_kind::completion;
    auto parsed = parse_openai_request(kind, msg, ctx_->routes.context(), raw);
    if (is_error(parsed)) {
      send_error(id, std::get<api_error>(parsed));
      return;
    }
    openai_request& r = std::get<openai_request>(parsed);
    // A frame streams one prompt's choices: batches and echo belong to /v1/completions.
    if (r.prompts.size() > 1) {
      send_error(id, bad_request("a generate message takes one prompt; lists of prompts work on /v1/completions",
                                 "prompt"));
      return;
    }
    if (r.echo) {
      send_error(id, bad_request("echo works on /v1/completions; use prompt_logprobs here", "echo"));
      return;
    }
    std::string rid = ctx_->new_request_id();
    r.gen.request_id = rid;
    const uint64_t seq = ++seq_;
    gens_[cid] = std::make_unique<generation>(ctx_->metrics, r, rid, seq);  // holds the id meanwhile
    if (!ctx_->ext || !ctx_->ext->has_filters()) {
      submit(cid, seq, std::move(r));
      return;
    }
    // The filters answer on an actor thread; the verdict comes back onto the strand.
    auto self = shared_from_this();
    auto pending = std::make_shared<openai_request>(std::move(r));
    ctx_->ext->filter(filter_request{pending->gen, meta_}, [self, cid, seq, pending](filter_verdict v) {
      boost::asio::post(self->strand_, [self, cid, seq, pending, v = std::move(v)] {
        self->on_verdict(cid, seq, std::move(*pending), v);
      });
    });
  }

  void on_verdict(const std::string& cid, uint64_t seq, openai_request r, const filter_verdict& v) {
    generation* g = find(cid, seq);
    if (!g) return;
    const bool cancelled = g->cancel_requested;
    if (closed_ || !v.accept || shutting_down_) {
      gens_.erase(cid);
      if (!v.accept) {
        send_error(cid, filter_rejection(v));
      } else if (shutting_down_) {
        send_error(cid, to_api_error(make_error(errc::draining, "the server is shutting down")));
      }
      if (shutting_down_ && gens_.empty()) do_close();
      return;
    }
    if (v.rewrite) r.gen.params = v.params;
    const std::string rid = r.gen.request_id;
    gens_[cid] = std::make_unique<generation>(ctx_->metrics, r, rid, seq);  // the filtered request
    submit(cid, seq, std::move(r));
    if (cancelled) ctx_->eng.cancel(rid);
  }

  void submit(const std::string& cid, uint64_t seq, openai_request r) {
    gens_[cid]->submitted = true;
    auto self = shared_from_this();
    ctx_->submit(
        std::move(r.gen), ctx_->ext ? meta_ : http_metadata{"GET", "/v1/ws", {}, {}},
        [self, cid, seq](const generation_event& ev) {
          boost::asio::post(self->strand_, [self, cid, seq, ev] { self->on_event(cid, seq, ev); });
        },
        [self, cid, seq](const error& e) {
          boost::asio::post(self->strand_, [self, cid, seq, e] { self->on_error(cid, seq, e); });
        });
  }

  void cancel(const json& msg) {
    json id = id_of(msg);
    auto it = id.is_null() ? gens_.end() : gens_.find(id.get<std::string>());
    if (it == gens_.end()) {
      send_error(id, api_error{404, "no running generation with this id", "not_found_error", "id", "not_found"});
      return;
    }
    if (!it->second->submitted) {  // still with the filters: cancelled as soon as it is submitted
      it->second->cancel_requested = true;
      return;
    }
    ctx_->eng.cancel(it->second->request_id);  // its choices end with finish_reason "abort"
  }

  // Generations still with the filters are dropped when their verdict comes (closed_ is set).
  void cancel_all() {
    for (auto& [id, g] : gens_) {
      if (g->submitted) ctx_->eng.cancel(g->request_id);
    }
  }

  generation* find(const std::string& cid, uint64_t seq) {
    auto it = gens_.find(cid);
    return it != gens_.end() && it->second->seq == seq ? it->second.get() : nullptr;
  }

  void on_event(const std::string& cid, uint64_t seq, const generation_event& ev) {
    generation* g = find(cid, seq);
    if (!g || !g->tracker.add(ev)) return;
    g->timing.on_event(ev);
    const char* finish = openai_finish_reason(ev.finish);
    if (!ev.token_ids.empty() || !ev.text.empty() || finish) {
      json frame = {{"type", "token"}, {"id", cid}, {"index", ev.index}, {"text", ev.text},
                    {"token_ids", ev.token_ids}};
      if (g->meta.logprobs >= 0 && !ev.logprobs.empty()) {
        frame["logprobs"] = logprobs_json(api_kind::chat, ev.logprobs, ctx_->routes.codec(), 0)["content"];
      }
      if (!ev.prompt_logprobs.empty()) {  // each choice's first frame (prompt_logprobs asked)
        frame["prompt_logprobs"] = logprobs_json(api_kind::chat, ev.prompt_logprobs, ctx_->routes.codec(), 0)["content"];
      }
      if (finish) frame["finish_reason"] = finish;
      send(frame);
    }
    if (!g->tracker.done()) return;
    g->timing.on_done();
    json choices = json::array();
    for (const auto& c : g->tracker.choices()) {
      const char* r = openai_finish_reason(c.finish);
      json choice = {{"index", choices.size()}, {"finish_reason", r ? json(r) : json(nullptr)}};
      if (g->meta.tool_calls) {  // the envelope streamed as tokens; its parsed form comes here
        auto [message, reason] = tool_message(g->meta, c.text, c.finish);
        choice["message"] = std::move(message);
        choice["finish_reason"] = std::move(reason);
      }
      choices.push_back(std::move(choice));
    }
    json done = {{"type", "done"}, {"id", cid}, {"finish_reason", choices[0]["finish_reason"]},
                 {"choices", std::move(choices)}, {"usage", usage_json(g->tracker.usage())}};
    send(done);
    gens_.erase(cid);
    ctx_->request_done();
    if (shutting_down_ && gens_.empty()) do_close();
  }

  void on_error(const std::string& cid, uint64_t seq, const error& e) {
    if (!find(cid, seq)) return;
    gens_.erase(cid);
    send_error(cid, to_api_error(e));
    if (shutting_down_ && gens_.empty()) do_close();
  }

  void send_error(const json& id, const api_error& e) {
    ctx_->metrics.count_rejection(rejection_reason(e));
    json frame = api_error_json(e);
    frame["type"] = "error";
    frame["id"] = id;
    send(frame);
  }

  // Output flow control: a client that submits but does not read would have its frames pile up
  // here without bound. Past --max-queued-output-bytes of unwritten frames, or a write that makes
  // no progress for --write-timeout, the client is disconnected and its generations cancelled.
  void send(const json& frame) {
    if (closed_) return;
    queue_.push_back(dump_json(frame));
    queued_bytes_ += queue_.back().size();
    if (queue_.size() > 1 && queued_bytes_ > ctx_->opts.server.max_queued_output_bytes) {  // behind
      drop_slow_client("queue_full", "more than " + std::to_string(ctx_->opts.server.max_queued_output_bytes) +
                                         " bytes of output queued");
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
      if (ec || !self->writing_ || self->write_seq_ != write) return;  // cancelled or finished in time
      self->drop_slow_client("write_timeout", "a write made no progress for " +
                             std::to_string(self->ctx_->opts.server.write_timeout_s) + " s");
    });
    ws_.text(true);
    ws_.async_write(boost::asio::buffer(queue_.front()),
                    beast::bind_front_handler(&ws_session::on_write, shared_from_this()));
  }

  void drop_slow_client(const char* reason, const std::string& why) {
    if (closed_) return;
    logger("net")->warn("ws: disconnecting a client that does not read its output ({})", why);
    ctx_->metrics.count_slow_client("ws", reason);
    closed_ = true;
    cancel_all();
    // The frame being written stays until its write completes (Beast holds a buffer into it).
    while (queue_.size() > (writing_ ? 1u : 0u)) {
      queued_bytes_ -= queue_.back().size();
      queue_.pop_back();
    }
    beast::error_code ec;
    beast::get_lowest_layer(ws_).close(ec);  // fails the pending read and write: nothing more is sent
  }

  void on_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    write_timer_.cancel();
    if (ec || closed_) {
      queue_.clear();
      queued_bytes_ = 0;
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
    if (writing_) {  // let the last frames out first
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
  boost::asio::steady_timer write_timer_;  // armed while a write is in flight
  std::deque<std::string> queue_;
  uint64_t queued_bytes_ = 0;  // sum of queue_'s sizes
  uint64_t write_seq_ = 0;     // tells a stale write timer from the current one
  http_metadata meta_;         // the upgrade request as filters see it (set when extensions run)
  std::unordered_map<std::string, std::unique_ptr<generation>> gens_;  // by client id
  uint64_t seq_ = 0;
  uint64_t registry_id_ = 0;
  bool writing_ = false;
  bool closed_ = false;
  bool close_pending_ = false;
  bool shutting_down_ = false;
};

}  // namespace

void start_ws_session(tcp::socket socket, std::shared_ptr<server_context> ctx,
                      beast::http::request<beast::http::string_body> upgrade, std::string buffered) {
  std::make_shared<ws_session>(std::move(socket), std::move(ctx))->run(std::move(upgrade), std::move(buffered));
}

}  // namespace troupe
