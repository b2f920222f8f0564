// `troupe serve`: starts the engine (printing the memory plan), then the HTTP/WebSocket listener
// until SIGINT/SIGTERM, then drains. Exit code 0 after a clean drain, 1 if start-up fails.
#include <cstdio>

#include "actors/engine.h"
#include "config/memory_plan.h"
#include "net/server.h"
#include "tools/troupe/commands.h"

namespace troupe {

int run_serve(const cli_result& cli) {
  auto eng = engine::start(cli.options);
  if (!eng) {
    std::fprintf(stderr, "error: %s\n", eng.err().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "%s", format_memory_plan((*eng)->plan()).c_str());
  std::fflush(stderr);
  return run_server(**eng, cli.options.server);
}

}  // namespace troupe
