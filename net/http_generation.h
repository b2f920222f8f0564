// http_generation: one generation request on an HTTP connection, the state that turns its engine
// events into a response (SSE chunks or one JSON body). Internal to the http_session_*.cpp files.
#pragma once

#include <string>
#include <vector>

#include "net/openai_response.h"
#include "net/responses_service.h"
#include "net/server_context.h"

namespace troupe {

struct http_generation {
  http_generation(server_metrics& m, const openai_request& r, std::string id)
      : request_id(std::move(id)),
        meta(make_response_meta(r, request_id)),
        tracker(r.gen.n, static_cast<int32_t>(r.gen.prompt_ids.size()), !r.stream),
        timing(m, r.gen.n),
        stream(r.stream),
        include_usage(r.include_usage),
        first_sent(static_cast<size_t>(r.gen.n), false),
        text_offset(static_cast<size_t>(r.gen.n), 0) {}

  std::string request_id;
  response_meta meta;
  generation_tracker tracker;
  request_timing timing;
  bool stream = false;
  bool include_usage = false;
  bool chunked = true;       // HTTP/1.1: chunked SSE; HTTP/1.0: raw bytes then close
  bool head_sent = false;    // SSE headers written
  bool client_gone = false;  // cancelled because the client went away
  std::vector<bool> first_sent;      // [n] chat role sent
  std::vector<int64_t> text_offset;  // [n] bytes of text streamed so far
  std::unique_ptr<response_run> response;  // a Responses API request: its events are shaped by it
};

}  // namespace troupe
