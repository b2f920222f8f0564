// The subcommands of the `troupe` binary; each returns the process exit code.
#pragma once

#include "config/cli.h"

namespace troupe {

int run_plan(const cli_result& cli);
int run_generate(const cli_result& cli);
int run_serve(const cli_result& cli);
int run_options(const cli_result& cli);  // `troupe options --markdown`

// The model path to use: --model, else the default model (with a hint to run setup if absent).
std::string model_path_or_default(const troupe_options& opts);

}  // namespace troupe
