// The router node's engine: the same facade the listener talks to, so the HTTP, OpenAI, SSE and
// WebSocket code serve a cluster unchanged. It loads only the model's config, tokenizer and chat
// template, runs the router actor over CAF's middleman, and keeps one connector thread per worker
// address that (re)connects whenever that worker is absent (late start, death, restart).
#pragma once

#include <memory>

#include "actors/engine.h"

namespace troupe {

// opts.cluster.role must be "router" with at least one worker address.
result<std::unique_ptr<engine>> start_cluster_engine(const troupe_options& opts);

}  // namespace troupe
