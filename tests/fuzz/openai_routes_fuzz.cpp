// Fuzzes the HTTP JSON request mapping of every body-carrying route through the real api_routes:
// /v1/completions and /v1/chat/completions (parse_generation) and /tokenize, /detokenize
// (handle_quick), over the real SmolLM2 tokenizer and chat template. Input: 1 route byte + body.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_support.h"
#include "net/metrics.h"
#include "net/routes.h"

namespace {

using namespace troupe;

struct routes_fixture {
  fuzz::tokenizer_only_engine eng;
  server_options opts;
  server_metrics metrics;
  server_state state;
  api_routes routes{eng, opts, make_engine_codec(eng), metrics, state, 30.0};
};

// A client's body may be refused (4xx) but must never be a server error: a 5xx is a finding.
void check_status(int status) {
  if (status >= 500 || (status != 200 && status < 400)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static routes_fixture* f = new routes_fixture();
  if (size < 1) return 0;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0:
    case 1: {
      const route_id id = data[0] % 4 == 0 ? route_id::completions : route_id::chat_completions;
      auto r = f->routes.parse_generation(id, body);
      if (is_error(r)) check_status(std::get<api_error>(r).status);
      break;
    }
    case 2:
    case 3: {
      http_request req;
      req.method = "POST";
      req.path = data[0] % 4 == 2 ? "/tokenize" : "/detokenize";
      req.body = body;
      http_response resp = f->routes.handle_quick(data[0] % 4 == 2 ? route_id::tokenize : route_id::detokenize, req);
      check_status(resp.status);
      break;
    }
  }
  return 0;
}
