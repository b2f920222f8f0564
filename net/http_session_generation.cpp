// http_session, the generation half: submitting a request to the engine, streaming its events as
// SSE or answering with one JSON body, and cancelling it when the client goes away. Engine events
// arrive on actor threads and reach the strand through the session's inbox (one post per drain).
// Design note: a plain-text delta (the common chunk) is written by the tree-free chunk writer into
// a reused buffer and framed straight into the output queue; with the inbox's reused slots and the
// arena for the drain posts, steady streaming allocates nothing per token.
#include "net/http_session.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "config/log.h"
#include "net/http_generation.h"
#include "net/stream_chunk_writer.h"

namespace troupe {

void http_session::submit_generation(openai_request req) {
  std::string id = ctx_->new_request_id();
  req.gen.request_id = id;
  gen_ = std::make_unique<http_generation>(ctx_->metrics, req, id);
  gen_->chunked = version_ >= 11;
  gen_->response = std::move(pending_response_);
  if (req.stream && !gen_->chunked) keep_alive_ = false;
  const uint64_t seq = ++gen_seq_;
  auto self = shared_from_this();
  // One engine request per prompt; their choices are renumbered prompt-major (prompt p, choice j ->
  // p * n + j), as OpenAI numbers the choices of a batch.
  const size_t num_prompts = std::max<size_t>(1, req.prompts.size());
  const int32_t n = req.gen.n;
  for (size_t p = 0; p < num_prompts; ++p) {
    generation_request g = req.gen;
    if (!req.prompts.empty()) g.prompt_ids = req.prompts[p].ids;
    if (num_prompts > 1) g.request_id = id + "-" + std::to_string(p);
    gen_->engine_ids.push_back(g.request_id);
    const int32_t base = static_cast<int32_t>(p) * n;
    try {
      ctx_->submit(
          std::move(g), http_meta_,
          [self, seq, base](const generation_event& ev) {
            if (!self->inbox_.push(seq, ev, base)) return;  // a drain is on its way already
            boost::asio::post(self->socket_.get_executor(),
                              arena_handler(self->arena_, [self] { self->drain_events(); }));
          },
          [self, seq](const error& e) {
            boost::asio::post(self->strand_, [self, seq, e] { self->on_error(seq, e); });
          });
    } catch (const std::exception& e) {
      for (size_t q = 0; q < p; ++q) ctx_->eng.cancel(gen_->engine_ids[q]);
      gen_.reset();
      respond(ctx_->routes.reject(api_error{500, std::string("submit failed: ") + e.what(), "internal_error", {}, {}}));
      return;
    }
  }
  do_read_some();  // notice a client that goes away while we wait
}

void http_session::drain_events() {
  const size_t n = inbox_.take(drained_);
  for (size_t k = 0; k < n; ++k) on_event(drained_[k].seq, drained_[k].ev);
}

void http_session::on_event(uint64_t seq, const generation_event& ev) {
  if (!gen_ || seq != gen_seq_) return;
  http_generation& g = *gen_;
  if (!g.tracker.add(ev)) return;
  g.timing.on_event(ev);
  if (g.response) {
    on_response_event(ev);
    return;
  }
  const bool done = g.tracker.done();
  if (done) g.timing.on_done();
  if (g.client_gone || phase_ == phase::closed) {
    if (done) finish_generation();
    return;
  }
  const text_codec* codec = ctx_->routes.codec();
  if (g.stream) {
    if (!g.head_sent) {
      std::string head = sse_head(g.chunked);
      if (!cors_origin_.empty()) {  // before the blank line that ends the head
        head.insert(head.size() - 2, "Access-Control-Allow-Origin: " + cors_origin_ + "\r\nVary: Origin\r\n");
      }
      send(std::move(head));
      g.head_sent = true;
    }
    const auto i = static_cast<size_t>(ev.index);
    const bool first = !g.first_sent[i];
    g.first_sent[i] = true;
    if (!g.tools.empty()) {  // under tools: content and calls as the choice's tool_stream reads them
      for (auto& c : tool_stream_chunks(g.meta, ev.index, g.tools[i], ev.text, ev.finish, g.include_usage)) {
        send_sse(c, g.chunked);
      }
    } else if (!g.reasoning.empty()) {  // the choice's parser: held-back tag prefixes are released at its end
      reasoning_split split = g.reasoning[i].feed(ev.text);
      if (ev.finish != finish_reason::none) {
        reasoning_split tail = g.reasoning[i].finish();
        split.reasoning += tail.reasoning;
        split.content += tail.content;
      }
      send_sse(stream_chunk(g.meta, ev, codec, first, g.include_usage, g.text_offset[i], &split), g.chunked);
    } else {
      chunk_.clear();
      if (!append_plain_stream_chunk(chunk_, g.meta, ev, first, g.include_usage, g.text_offset[i])) {
        chunk_ = stream_chunk(g.meta, ev, codec, first, g.include_usage, g.text_offset[i]);  // logprobs, echo
      }
      send_sse(chunk_, g.chunked);
    }
    if (done) {
      if (g.include_usage) send_sse(usage_chunk(g.meta, g.tracker.usage()), g.chunked);
      send(sse_end(g.chunked));
      const bool keep = keep_alive_ && g.chunked;
      finish_generation();
      complete_response(keep);
    }
  } else if (done) {
    http_response r = http_response::json(200, dump_json(final_response(g.meta, g.tracker, codec)));
    finish_generation();
    respond(r);
  }
}

void http_session::on_error(uint64_t seq, const error& e) {
  if (!gen_ || seq != gen_seq_) return;
  const api_error a = to_api_error(e);
  if (gen_->response) {
    on_response_error(a);
    return;
  }
  const bool gone = gen_->client_gone || phase_ == phase::closed;
  const bool head_sent = gen_->head_sent;
  const bool chunked = gen_->chunked;
  // One failed prompt fails the request: the others' engine requests stop too.
  for (const std::string& other : gen_->engine_ids) ctx_->eng.cancel(other);
  gen_.reset();
  if (gone) return;
  if (head_sent) {  // the stream began: report in-band
    ctx_->metrics.count_rejection(rejection_reason(a));
    send(sse_event(api_error_body(a), chunked));
    send(sse_end(chunked));
    complete_response(keep_alive_ && chunked);
  } else {
    respond(ctx_->routes.reject(a));
  }
}

void http_session::finish_generation() {
  gen_.reset();
  ctx_->request_done();
}

void http_session::client_gone() {
  if (gen_ && !gen_->client_gone) {
    gen_->client_gone = true;
    logger("net")->debug("client went away: cancelling {}", gen_->request_id);
    for (const std::string& id : gen_->engine_ids) ctx_->eng.cancel(id);
  }
  close();
}
}  // namespace troupe
