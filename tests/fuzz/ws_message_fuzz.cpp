// Fuzzes the WebSocket protocol messages (docs/websocket.md). ws_session's handle_message lives in
// the session class with the socket, so this target repeats its dispatch (JSON object, "type",
// "id", chat when "messages" is present) and drives the same parsers it calls, parse_json_body (with
// the depth limit) and parse_openai_request, over the real tokenizer and chat template. Keep in step
// with net/ws_session.cpp.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "net/metrics.h"
#include "net/routes.h"

namespace {

using namespace troupe;
using json = nlohmann::json;

struct ws_fixture {
  fuzz::tokenizer_only_engine eng;
  server_options opts;
  server_metrics metrics;
  server_state state;
  api_routes routes{eng, opts, make_engine_codec(eng), metrics, state, 30.0};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ws_fixture* f = new ws_fixture();
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto body = parse_json_body(text, f->routes.context().max_json_depth);
  if (is_error(body)) return 0;
  const json& msg = std::get<json>(body);
  auto type = msg.find("type");
  if (type == msg.end() || !type->is_string() || *type != "generate") return 0;
  auto id = msg.find("id");
  if (id == msg.end() || !id->is_string() || id->get_ref<const std::string&>().empty()) return 0;
  const api_kind kind = msg.contains("messages") ? api_kind::chat : api_kind::completion;
  auto parsed = parse_openai_request(kind, msg, f->routes.context());
  if (is_error(parsed) && std::get<api_error>(parsed).status >= 500) std::abort();
  return 0;
}
