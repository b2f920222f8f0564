// Fuzzes the command line: the input's lines are the arguments after `troupe` (subcommand, flags,
// bare boolean flags and their optional words, values of every type), fed to parse_command_line.
// --config is left out: it would read whatever file the input names.
#include <cstdint>
#include <string>
#include <vector>

#include "config/cli.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args{"troupe"};
  size_t pos = 0;
  while (pos <= text.size() && args.size() < 64) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    args.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  for (const auto& a : args)
    if (a.find("config") != std::string::npos) return 0;
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  const cli_result r = parse_command_line(static_cast<int>(argv.size()), argv.data());
  if (r.command.empty() && r.output.empty() && r.exit_code != 0) __builtin_trap();  // an error says why
  return 0;
}
