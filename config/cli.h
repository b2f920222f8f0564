// The command line of the `troupe` binary: subcommands serve, generate and plan, each with the
// options of options.h (and a config file, JSON, whose keys are the long flag names; the command
// line overrides it). Parsing never exits the process: the caller prints and returns the code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/error.h"
#include "config/options.h"
#include "config/sampling_params.h"

namespace troupe {

struct generate_args {
  std::string prompt;
  std::vector<int32_t> prompt_ids;  // --prompt-ids 1,2,3
  bool chat = false;                // apply the model's chat template to --prompt
  bool json = false;                // print {"token_ids": [...], "text": ...} at the end
  sampling_params sampling;
};

struct plan_args {
  bool json = false;
};

struct cli_result {
  std::string command;          // "serve" | "generate" | "plan" | "" (help/version printed)
  troupe_options options;
  generate_args generate;
  plan_args plan;
  int exit_code = 0;            // when command is empty: 0 after --help, 2 on a usage error
  std::string output;           // help text or usage error to print
};

// Parses argv. Errors in values or in the config file come back in `output` with exit_code 2.
cli_result parse_command_line(int argc, const char* const* argv);

// Applies a JSON config file's keys onto `opts` (keys: long flag names with '-' or '_').
// Unknown keys and wrong types are errors naming the key.
status apply_config_json(const std::string& json_text, const std::string& origin, troupe_options& opts);

// Checks ranges that do not depend on the model (those that do are checked by the planner).
status validate_options(const troupe_options& opts);

}  // namespace troupe
