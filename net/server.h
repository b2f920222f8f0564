// run_server: what `troupe serve` calls once the engine is up. Serves the HTTP/WebSocket API until
// SIGINT or SIGTERM, then drains (engine.drain(drain_timeout)) and returns 0 (1 if it cannot listen).
#pragma once

#include "actors/engine.h"
#include "config/options.h"
#include "net/listener.h"

namespace troupe {

int run_server(engine& eng, const server_options& opts);
int run_server(engine& eng, const listener_options& opts);


}  // namespace troupe
