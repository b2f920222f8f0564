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
#include "net/ws_connection.h"

namespace troupe {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr size_t k_max_id_bytes = 256;

class ws_session final : public session_base,
                         public std::enable_shared_from_this<ws_session>,
                         public ws_connection<ws_session> {
 public:
  ws_session(tcp::socket socket, std::shared_ptr<server_context> ctx)
      : ws_connection(std::move(socket), std::move(ctx), "ws") {}

  void run(beast::http::request<beast::http::string_body> req, std::string buffered) {
    if (ctx_->ext) meta_ = request_metadata(req);  // what request filters see of every generation
    accept(req, buffered);
  }

  void shutdown() override {
    boost::asio::post(strand(), [self = shared_from_this()] {
      self->shutting_down_ = true;
      if (self->gens_.empty()) self->do_close();
    });
  }

 private:
  struct generation {
    generation(server_metrics& m, const openai_request& r, std::string rid, uint64_t s)
        : request_id(std::move(rid)), seq(s), meta(make_response_meta(r, request_id)),
          tracker(r.gen.n, static_cast<int32_t>(r.gen.prompt_ids.size()), r.tool_calls), timing(m, r.gen.n) {
      if (r.tool_calls) tools.assign(static_cast<size_t>(r.gen.n), tool_stream(meta.tool_syntax, meta.tool_names));
      call_ids.resize(tools.size());
    }
    std::string request_id;
    uint64_t seq;
    response_meta meta;
    generation_tracker tracker;
    request_timing timing;
    std::vector<tool_stream> tools;                    // per choice, under tools
    std::vector<std::vector<std::string>> call_ids;  // per choice: the ids its streamed calls got
    bool submitted = false;         // false while the request filters decide
    bool cancel_requested = false;  // a cancel that came before submission
  };

  friend class ws_connection<ws_session>;

  void on_message_exception(const std::exception& e) {
    send_error(nullptr, api_error{500, e.what(), "internal_error", {}, {}});
  }
  // The socket failed or the client stopped reading: every generation goes with it.
  void on_client_gone() { cancel_all(); }

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
      boost::asio::post(self->strand(), [self, cid, seq, pending, v = std::move(v)] {
        self->on_verdict(cid, seq, std::move(*pending), v);
      });
    });
  }

  void on_verdict(const std::string& cid, uint64_t seq, openai_request r, const filter_verdict& v) {
    generation* g = find(cid, seq);
    if (!g) return;
    const bool cancelled = g->cancel_requested;
    if (closed() || !v.accept || shutting_down_) {
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
          boost::asio::post(self->strand(), [self, cid, seq, ev] { self->on_event(cid, seq, ev); });
        },
        [self, cid, seq](const error& e) {
          boost::asio::post(self->strand(), [self, cid, seq, e] { self->on_error(cid, seq, e); });
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

  // Generations still with the filters are dropped when their verdict comes (closed() is true).
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
      if (static_cast<size_t>(ev.index) < g->tools.size()) {  // under tools: the chat delta of this text
        tool_stream& ts = g->tools[static_cast<size_t>(ev.index)];
        std::vector<std::string>& ids = g->call_ids[static_cast<size_t>(ev.index)];
        tool_delta d = ts.feed(ev.text);
        bool calls = false;
        if (ev.finish != finish_reason::none) {
          tool_delta rest = ts.finish(ev.finish, calls);
          d.content += rest.content;
          for (auto& c : rest.calls) d.calls.push_back(std::move(c));
        }
        if (json delta = tool_delta_json(d, ids); !delta.is_null()) frame["delta"] = std::move(delta);
        if (calls) finish = "tool_calls";
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
      if (g->meta.tool_calls) {  // the parsed form of what the token frames' deltas streamed
        auto [message, reason] = tool_message(g->meta, c.text, c.finish);
        const std::vector<std::string>& ids = g->call_ids[choices.size()];
        if (message.contains("tool_calls")) {  // the ids the deltas gave the calls
          for (size_t i = 0; i < ids.size() && i < message["tool_calls"].size(); ++i) message["tool_calls"][i]["id"] = ids[i];
        }
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

  void send(const json& frame) { send_text(dump_json(frame)); }

  http_metadata meta_;         // the upgrade request as filters see it (set when extensions run)
  std::unordered_map<std::string, std::unique_ptr<generation>> gens_;  // by client id
  uint64_t seq_ = 0;
  bool shutting_down_ = false;
};

}  // namespace

void start_ws_session(tcp::socket socket, std::shared_ptr<server_context> ctx,
                      beast::http::request<beast::http::string_body> upgrade, std::string buffered) {
  std::make_shared<ws_session>(std::move(socket), std::move(ctx))->run(std::move(upgrade), std::move(buffered));
}

}  // namespace troupe
