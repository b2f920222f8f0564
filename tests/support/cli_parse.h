// Test support: parse_command_line over a list of strings, as `troupe ARGS...` would see them.
#pragma once

#include <string>
#include <vector>

#include "config/cli.h"

namespace troupe::testing {

inline cli_result parse(std::vector<std::string> args) {
  args.insert(args.begin(), "troupe");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

}  // namespace troupe::testing
