// serve_main (include/troupe/serve.h): `troupe serve` for a binary that links its own extensions
// (examples/server.cpp, or a project built against the installed package).
#include "troupe/serve.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>

#include "actors/engine.h"
#include "config/cli.h"
#include "config/log.h"
#include "config/memory_plan.h"
#include "net/server.h"
#include "troupe/extension.h"

namespace troupe {

int serve_main(int argc, char** argv, const extensions* in_code) {
  cli_result cli = parse_command_line(argc, argv);
  if (cli.command.empty()) {
    std::fputs(cli.output.c_str(), cli.exit_code == 0 ? stdout : stderr);
    return cli.exit_code;
  }
  if (cli.command != "serve") {
    std::fprintf(stderr, "this server only serves: %s serve [--extensions a,b] [options]\n", argc > 0 ? argv[0] : "server");
    return 2;
  }
  set_log_level(cli.options.log_level);
  std::string linked;
  for (const auto& n : extension_registry::names()) linked += " " + n;
  std::fprintf(stderr, "extensions linked in:%s\n", linked.c_str());
  auto eng = engine::start(cli.options);
  if (!eng) {
    std::fprintf(stderr, "error: %s\n", eng.err().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "%s", format_memory_plan((*eng)->plan()).c_str());
  listener_options lo;
  lo.server = cli.options.server;
  lo.num_threads = static_cast<int32_t>(std::clamp(std::thread::hardware_concurrency(), 2u, 4u));
  if (in_code && !in_code->empty()) lo.extension_set = std::make_shared<extensions>(*in_code);
  return run_server(**eng, lo);
}

}  // namespace troupe
