// Fuzzes /tokenize and /detokenize through the real api_routes (parse_json_body with the depth
// limit, prompt shapes, token-id checks) over the real SmolLM2 tokenizer and chat template.
// Input: 1 route byte (even: /tokenize, odd: /detokenize) + body. Findings: a 5xx, a status that is
// neither 200 nor 4xx, a 200 whose tokens lie outside the vocabulary, an error body that is not a
// bounded OpenAI error (client values must be quoted as a short prefix, never dumped).
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

constexpr size_t k_max_error_body = 1024;

struct tokenize_fixture {
  fuzz::tokenizer_only_engine eng;
  server_options opts;
  server_metrics metrics;
  server_state state;
  api_routes routes{eng, opts, make_engine_codec(eng), metrics, state, 30.0};
};

void check_tokens(const json& body, int64_t vocab_size) {
  const json& tokens = body.at("tokens");
  if (!tokens.is_array() || body.at("count") != tokens.size()) std::abort();
  for (const json& t : tokens) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab_size) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tokenize_fixture* f = new tokenize_fixture();
  if (size < 1) return 0;
  const bool tokenize = data[0] % 2 == 0;
  http_request req;
  req.method = "POST";
  req.path = tokenize ? "/tokenize" : "/detokenize";
  req.body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  http_response resp = f->routes.handle_quick(tokenize ? route_id::tokenize : route_id::detokenize, req);
  if (resp.status >= 500 || (resp.status != 200 && resp.status < 400)) std::abort();
  json body = json::parse(resp.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) std::abort();
  if (resp.status == 200) {
    if (tokenize) check_tokens(body, f->routes.context().vocab_size);
    if (!tokenize && !body.at("prompt").is_string()) std::abort();
    return 0;
  }
  if (resp.body.size() > k_max_error_body || !body.contains("error")) std::abort();
  return 0;
}
