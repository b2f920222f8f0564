// `troupe serve`: starts the engine (printing the memory plan), then the HTTP/WebSocket listener
// until SIGINT/SIGTERM, then drains. Exit code 0 after a clean drain, 1 if start-up fails.
// Cluster mode (docs/cluster.md): --role worker also publishes the scheduler for routers;
// --role router serves the API in front of --workers with a router engine that holds no model;
// both need the cluster credentials (or --cluster-insecure on loopback), checked first.
#include <cstdio>

#include "actors/cluster_engine.h"
#include "actors/cluster_tls.h"
#include "actors/engine.h"
#include "config/memory_plan.h"
#include "net/server.h"
#include "tools/troupe/commands.h"

namespace troupe {

int run_serve(const cli_result& cli) {
  const std::string& role = cli.options.cluster.role;
  // Cluster links are mutual TLS unless --cluster-insecure on loopback: refused before any port
  // opens or any model loads, as a usage error (exit 2).
  if (auto st = check_cluster_security(cli.options); !st) {
    std::fprintf(stderr, "error: %s\n", st.err().message.c_str());
    return 2;
  }
  auto eng = role == "router" ? start_cluster_engine(cli.options) : engine::start(cli.options);
  if (!eng) {
    std::fprintf(stderr, "error: %s\n", eng.err().message.c_str());
    return 1;
  }
  if (role != "router") {
    std::fprintf(stderr, "%s", format_memory_plan((*eng)->plan()).c_str());
    std::fflush(stderr);
  }
  if (role == "worker") {
    auto port = (*eng)->publish_worker();
    if (!port) {
      std::fprintf(stderr, "error: %s\n", port.err().message.c_str());
      return 1;
    }
  }
  return run_server(**eng, cli.options.server);
}

}  // namespace troupe
