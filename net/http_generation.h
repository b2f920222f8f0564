// http_generation: one generation request on an HTTP connection, the state that turns its engine
// events into a response (SSE chunks or one JSON body). Internal to the http_session_*.cpp files.
#pragma once

#include <algorithm>
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
        tracker(num_choices(r), num_prompt_tokens(r), !r.stream, std::max<int32_t>(1, static_cast<int32_t>(r.prompts.size()))),
        timing(m, num_choices(r)),
        stream(r.stream),
        include_usage(r.include_usage),
        first_sent(static_cast<size_t>(num_choices(r)), false) {
    for (int32_t i = 0; i < num_choices(r); ++i) text_offset.push_back(initial_text_offset(meta, i));
    if (meta.separate_reasoning && stream)
      reasoning.assign(static_cast<size_t>(num_choices(r)), reasoning_parser(meta.reasoning_starts_open));
    if (r.tool_calls && r.stream) tools.assign(static_cast<size_t>(num_choices(r)), tool_stream(meta.tool_syntax, meta.tool_names));
  }

  // A list of K prompts runs as K engine requests of n choices each (choice i = prompt i / n).
  static int32_t num_choices(const openai_request& r) {
    return r.gen.n * std::max<int32_t>(1, static_cast<int32_t>(r.prompts.size()));
  }
  static int32_t num_prompt_tokens(const openai_request& r) {
    if (r.prompts.empty()) return static_cast<int32_t>(r.gen.prompt_ids.size());
    int32_t n = 0;
    for (const prompt_item& p : r.prompts) n += static_cast<int32_t>(p.ids.size());
    return n;
  }

  std::string request_id;
  std::vector<std::string> engine_ids;  // one engine request per prompt (cancelled together)
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
  std::vector<reasoning_parser> reasoning;  // [n] when streaming with separate_reasoning, else empty
  std::vector<tool_stream> tools;  // [n] under tools: each choice's calls, streamed as they are written
  std::unique_ptr<response_run> response;  // a Responses API request: its events are shaped by it
};

}  // namespace troupe
