// What every session of one listener shares: the engine, options, routes, metrics, the blocking
// executor for engine.stats(), and the registry of live sessions (for graceful stop).
// Internal to net/: included by listener.cpp, http_session.cpp and ws_session.cpp only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/thread_pool.hpp>

#include "actors/extension_host.h"
#include "net/listener.h"
#include "net/response_store.h"
#include "net/responses_service.h"  // conversation_key
#include "net/routes.h"

namespace troupe {

namespace asio = boost::asio;

class session_base {
 public:
  virtual ~session_base() = default;
  // Thread-safe: close when idle, or after the response in progress (WebSocket: close frame).
  virtual void shutdown() = 0;
};

struct server_context {
  server_context(engine& e, listener_options o, std::shared_ptr<const text_codec> codec)
      : eng(e), opts(std::move(o)),
        routes(e, opts.server, std::move(codec), metrics, state, opts.health_stall_s) {
    routes.extra_metrics = [this] { return responses.metrics_text() + session_cache_metrics(); };
    // A response that leaves the store takes its conversation pin with it.
    if (cache) responses.on_evict([c = cache](const stored_response& r) { c->unpin(conversation_key(r.id)); });
  }

  engine& eng;
  listener_options opts;
  server_metrics metrics;
  server_state state;
  api_routes routes;
  asio::thread_pool blocking{1};  // engine.stats() callers (/health, /metrics)
  // Connections counted against max_connections. A session gives its place back when it closes
  // its socket (or starts lingering after its last response), not when its last handler lets go of
  // it: a client that saw its connection close may connect again at once.
  std::atomic<int32_t> num_connections{0};
  std::shared_ptr<extension_host> ext;  // custom actors; null when none (set by listener::start)
  response_store responses{opts.server.response_store_size, opts.server.response_store_ttl_s};  // Responses API
  conversation_cache* cache = conversation_cache_of(eng);  // resident conversation KV; null without one

  // eng.submit, telling the observers (if any) of the request and of each event or failure.
  void submit(generation_request req, const http_metadata& http, event_callback on_event, error_callback on_error) {
    if (ext && ext->has_observers()) {
      request_info info{req.request_id, http_metadata{http.method, http.path, http.api_key, {}},
                        static_cast<int32_t>(req.prompt_ids.size()), req.n, req.params};
      ext->observe_begin(info);
      std::weak_ptr<extension_host> host = ext;
      on_event = [host, f = std::move(on_event)](const generation_event& ev) {
        if (auto h = host.lock()) h->observe_event(ev);
        f(ev);
      };
      on_error = [host, id = req.request_id, f = std::move(on_error)](const error& e) {
        if (auto h = host.lock()) h->observe_failure(id, e);
        f(e);
      };
    }
    eng.submit(std::move(req), std::move(on_event), std::move(on_error));
  }

  std::string new_request_id() {
    static const uint64_t boot = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count());
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%08llx%08llx", static_cast<unsigned long long>(boot & 0xffffffffu),
                  static_cast<unsigned long long>(next_request.fetch_add(1) + 1));
    return buf;
  }

  // Gives one connection's place back, once: `counted` is the session's own flag, cleared here.
  void release_connection(bool& counted) {
    if (counted) num_connections.fetch_sub(1);
    counted = false;
  }

  void request_done() {
    if (!first_done.exchange(true) && on_first_request_done) on_first_request_done();
  }

  uint64_t add_session(std::weak_ptr<session_base> s) {
    std::lock_guard<std::mutex> lock(mu);
    sessions.emplace(++next_session, std::move(s));
    return next_session;
  }
  void remove_session(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    sessions.erase(id);
  }
  void shutdown_all() {
    std::vector<std::shared_ptr<session_base>> live;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [id, w] : sessions) {
        if (auto s = w.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) s->shutdown();
  }

  std::function<void()> on_first_request_done;

 private:
  // The conversation pins' gauges for /metrics (asks the block manager; bounded wait).
  std::string session_cache_metrics() {
    if (!cache) return {};
    auto s = cache->pin_stats(std::chrono::milliseconds(1000));
    if (!s) return {};
    std::string out;
    auto gauge = [&](const char* name, const char* type, const char* help, int64_t v) {
      out += prom_family_header(name, type, help);
      out += std::string(name) + " " + prom_number(static_cast<double>(v)) + "\n";
    };
    gauge("troupe:session_cache_pinned_blocks", "gauge", "KV blocks pinned for Responses API conversations.",
          s->num_pinned_blocks);
    gauge("troupe:session_cache_budget_blocks", "gauge", "Most KV blocks conversations may pin (--session-cache-fraction).",
          s->budget_blocks);
    gauge("troupe:session_cache_pins", "gauge", "Conversations holding pinned KV blocks.", s->num_pins);
    out += prom_family_header("troupe:session_cache_pins_released_total", "counter",
                              "Conversation pins released, by reason.");
    const std::pair<const char*, int64_t> reasons[] = {{"unpinned", s->num_released}, {"expired", s->num_expired},
                                                       {"pressure", s->num_dropped_pressure},
                                                       {"budget", s->num_dropped_budget}};
    for (const auto& [reason, v] : reasons) {
      out += "troupe:session_cache_pins_released_total{reason=\"" + std::string(reason) + "\"} " +
             prom_number(static_cast<double>(v)) + "\n";
    }
    return out;
  }

  std::atomic<uint64_t> next_request{0};
  std::atomic<bool> first_done{false};
  std::mutex mu;
  std::unordered_map<uint64_t, std::weak_ptr<session_base>> sessions;
  uint64_t next_session = 0;
};

}  // namespace troupe
