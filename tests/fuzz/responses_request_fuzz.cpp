// Fuzzes the Responses API request parser (net/responses_api.h, net/responses_service.h): a body of
// POST /v1/responses or a WebSocket `response.create` event goes through parse_json_body (with the
// depth limit), prepare_response (input items, tools, text.format, previous_response_id through a
// store holding one response; the raw text re-read for the schema's property order) and the chat
// mapping, over the real tokenizer and chat template, then the same text as the answer through the
// event builder. A parsed request must never be a 5xx, and nothing may crash.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "net/metrics.h"
#include "net/openai_response.h"  // dump_json
#include "net/response_store.h"
#include "net/responses_service.h"
#include "net/routes.h"

namespace {

using namespace troupe;
using json = nlohmann::json;

struct responses_fixture {
  fuzz::tokenizer_only_engine eng;
  server_options opts;
  server_metrics metrics;
  server_state state;
  api_routes routes{eng, opts, make_engine_codec(eng), metrics, state, 30.0};
  response_store store{4, 3600};
  responses_fixture() {
    stored_response r;
    r.id = "resp_seed";
    r.owner = "k";
    r.conversation = json::array({{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"content", "hello"}}});
    store.put(r);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static responses_fixture* f = new responses_fixture();
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto body = parse_json_body(text, f->routes.context().max_json_depth);
  if (is_error(body)) return 0;
  const json& msg = std::get<json>(body);
  for (bool websocket : {false, true}) {
    // With the raw text, as the HTTP and socket sessions pass it (schemas keep the client's order).
    auto run = prepare_response(msg, websocket, f->store, "k", f->routes.context(), nullptr, text);
    if (is_error(run) && std::get<api_error>(run).status >= 500) std::abort();
    if (!is_error(run)) {
      // The events of a response are built from the parsed params: shape them once.
      auto& r = *std::get<std::unique_ptr<response_run>>(run);
      (void)r.builder.start();
      // The input as the model's answer: under tools it is parsed as the envelope (function_call
      // items), and the conversation a next turn continues is built from it.
      generation_event ev;
      ev.text = text;
      ev.finish = finish_reason::stop;
      (void)r.builder.on_event(ev);
      (void)dump_json(r.builder.object());
      (void)r.entry();
    }
  }
  return 0;
}
