// The `troupe` binary: parses the command line and hands off to one subcommand (serve, generate,
// plan). Each subcommand lives in its own file and returns the process exit code.
#include <cstdio>

#include "config/cli.h"
#include "config/log.h"
#include "tools/troupe/commands.h"

int main(int argc, char** argv) {
  troupe::cli_result cli = troupe::parse_command_line(argc, argv);
  if (cli.command.empty()) {
    std::fputs(cli.output.c_str(), cli.exit_code == 0 ? stdout : stderr);
    return cli.exit_code;
  }
  troupe::set_log_level(cli.options.log_level);
  if (cli.command == "plan") return troupe::run_plan(cli);
  if (cli.command == "generate") return troupe::run_generate(cli);
  if (cli.command == "serve") return troupe::run_serve(cli);
  if (cli.command == "options") return troupe::run_options(cli);
  return 2;
}
