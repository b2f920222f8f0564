// http_session, the Responses API half: POST /v1/responses parsed into a response_run, sent through
// the request filters and the engine like any generation, its events shaped into the Responses
// stream (named SSE events, no [DONE]) or one response object, and stored when asked (store: true).
#include <boost/asio/post.hpp>

#include "net/http_generation.h"
#include "net/http_session.h"

namespace troupe {

void http_session::start_response(const http_request& req) {
  auto body = parse_json_body(req.body, ctx_->routes.context().max_json_depth);
  if (is_error(body)) {
    respond(ctx_->routes.reject(std::get<api_error>(body)));
    return;
  }
  auto run = prepare_response(std::get<nlohmann::json>(body), false, ctx_->responses, bearer_token(req.authorization),
                              ctx_->routes.context(), nullptr, req.body);
  if (is_error(run)) {
    respond(ctx_->routes.reject(std::get<api_error>(run)));
    return;
  }
  pending_response_ = std::move(std::get<std::unique_ptr<response_run>>(run));
  openai_request gen = pending_response_->gen;
  start_generation(std::move(gen));
}

void http_session::on_response_event(const generation_event& ev) {
  http_generation& g = *gen_;
  response_run& run = *g.response;
  // The lifecycle events first: created and in_progress show the response before any output.
  std::vector<nlohmann::json> events = run.builder.started() ? std::vector<nlohmann::json>{} : run.builder.start();
  for (auto& e : run.builder.on_event(ev)) events.push_back(std::move(e));
  const bool done = g.tracker.done() || run.builder.done();
  if (done) {
    g.timing.on_done();
    settle_response(run, ctx_->responses, ctx_->cache, false);
  }
  if (g.client_gone || phase_ == phase::closed) {
    if (done) finish_generation();
    return;
  }
  if (run.params.stream) {
    if (!g.head_sent) {
      std::string head = sse_head(g.chunked);
      if (!cors_origin_.empty()) {  // before the blank line that ends the head
        head.insert(head.size() - 2, "Access-Control-Allow-Origin: " + cors_origin_ + "\r\nVary: Origin\r\n");
      }
      send(std::move(head));
      g.head_sent = true;
    }
    for (const auto& e : events) send(sse_named_event(e["type"].get<std::string>(), dump_json(e), g.chunked));
    if (done) {
      send(sse_close(g.chunked));
      const bool keep = keep_alive_ && g.chunked;
      finish_generation();
      complete_response(keep);
    }
  } else if (done) {
    http_response r = http_response::json(200, dump_json(run.builder.object()));
    finish_generation();
    respond(r);
  }
}

void http_session::on_response_error(const api_error& a) {
  std::unique_ptr<http_generation> g = std::move(gen_);
  if (g->client_gone || phase_ == phase::closed) return;
  if (!g->head_sent) {
    respond(ctx_->routes.reject(a));
    return;
  }
  // The stream began: the response fails in-band.
  ctx_->metrics.count_rejection(rejection_reason(a));
  for (const auto& e : g->response->builder.fail(a)) send(sse_named_event(e["type"].get<std::string>(), dump_json(e), g->chunked));
  send(sse_close(g->chunked));
  complete_response(keep_alive_ && g->chunked);
}

}  // namespace troupe
