// The HTTP routes of the server, free of any socket code: route matching, method and API-key
// checks, the quick JSON routes (/v1/models, /tokenize, /detokenize, /ready), the routes that ask
// the engine for stats (/health, /metrics: run them off the I/O threads), and the parsing of
// generation requests. Sessions (http_session, ws_session) drive them.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "actors/engine.h"
#include "net/http_message.h"
#include "net/metrics.h"
#include "net/openai_api.h"
#include "net/text_codec.h"

namespace troupe {

struct server_state {
  std::atomic<bool> started{false};   // the listener accepts
  std::atomic<bool> draining{false};  // stop() began: /ready answers 503
};

enum class route_id : uint8_t {
  completions, chat_completions, models, model, tokenize, tokenizer_info, detokenize, health, ready, metrics, websocket,
  responses,         // POST /v1/responses; GET upgrades to the Responses WebSocket mode
  response_object,   // GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items
  static_file,  // the web playground: / and /static/<name> (net/static_files.h)
  unknown
};

struct route_match {
  route_id id = route_id::unknown;
  const char* method = "GET";  // the one method the route accepts
  bool needs_auth = true;
  bool blocking = false;  // calls engine.stats(): run off the I/O threads
  const char* alt_method = nullptr;  // a second method the route accepts
};

class api_routes {
 public:
  api_routes(engine& eng, const server_options& opts, std::shared_ptr<const text_codec> codec,
             server_metrics& metrics, server_state& state, double health_stall_s);

  route_match match(std::string_view path) const;
  // 404 unknown route, 405 wrong method (with Allow), 401 bad key; nullopt: go on.
  std::optional<http_response> admit(const route_match& m, const http_request& req) const;
  http_response handle_quick(route_id id, const http_request& req) const;
  http_response handle_blocking(route_id id);  // blocks up to ~1 s on engine.stats()

  api_result<openai_request> parse_generation(route_id id, const std::string& body) const;
  const api_context& context() const { return ctx_; }
  const std::string& model_name() const { return ctx_.model_name; }
  engine& eng() { return eng_; }
  server_metrics& metrics() { return metrics_; }
  server_state& state() { return state_; }
  const server_options& options() const { return opts_; }
  const text_codec* codec() const { return codec_.get(); }

  // More Prometheus text appended to /metrics (the Responses store's); set before serving.
  std::function<std::string()> extra_metrics;

  // An error response, counted in troupe:requests_rejected_total.
  http_response reject(const api_error& e) const;

 private:
  http_response models() const;
  http_response model(const std::string& id) const;  // GET /v1/models/{id}
  nlohmann::json model_card() const;
  http_response tokenize(const http_request& req) const;
  http_response tokenizer_info() const;
  http_response detokenize(const http_request& req) const;
  http_response ready() const;
  http_response health();
  http_response metrics_text();
  http_response static_page(std::string_view path) const;

  engine& eng_;
  server_options opts_;
  std::shared_ptr<const text_codec> codec_;
  server_metrics& metrics_;
  server_state& state_;
  double health_stall_s_;
  api_context ctx_;
};

}  // namespace troupe
