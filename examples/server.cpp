// example_server: `troupe serve` with the example extensions linked in (examples/extensions/*.cpp:
// rate_limiter, audit_log, echo_stats, faulty_filter). Enable them by name, in order:
//   example_server serve --extensions rate_limiter,audit_log,echo_stats
// or in a config file: {"extensions": ["rate_limiter", "audit_log", "echo_stats"]}.
#include <algorithm>
#include <cstdio>
#include <thread>

#include "actors/engine.h"
#include "config/cli.h"
#include "config/log.h"
#include "config/memory_plan.h"
#include "net/server.h"
#include "troupe/extension.h"

int main(int argc, char** argv) {
  troupe::cli_result cli = troupe::parse_command_line(argc, argv);
  if (cli.command.empty()) {
    std::fputs(cli.output.c_str(), cli.exit_code == 0 ? stdout : stderr);
    return cli.exit_code;
  }
  if (cli.command != "serve") {
    std::fprintf(stderr, "example_server only serves: example_server serve [--extensions a,b] [options]\n");
    return 2;
  }
  troupe::set_log_level(cli.options.log_level);
  std::string linked;
  for (const auto& n : troupe::extension_registry::names()) linked += " " + n;
  std::fprintf(stderr, "extensions linked in:%s\n", linked.c_str());
  auto eng = troupe::engine::start(cli.options);
  if (!eng) {
    std::fprintf(stderr, "error: %s\n", eng.err().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "%s", troupe::format_memory_plan((*eng)->plan()).c_str());
  troupe::listener_options lo;
  lo.server = cli.options.server;
  lo.num_threads = static_cast<int32_t>(std::clamp(std::thread::hardware_concurrency(), 2u, 4u));
  // Extensions registered in code would go here: lo.extension_set = std::make_shared<troupe::extensions>(...).
  return troupe::run_server(**eng, lo);
}
