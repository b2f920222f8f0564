// The option definitions, once: name, group, help line, default, and a setter from text. The CLI,
// the config-file reader and the generated configuration reference (docs) all read this table.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/error.h"
#include "config/options.h"
#include "config/sampling_params.h"

namespace troupe {

struct option_def {
  std::string name;           // long flag without dashes, e.g. "max-batch-size"
  std::string group;          // "model" | "engine" | "memory" | "limits" | "server" | "logging"
  std::string help;           // one line
  std::string default_text;   // as shown in --help and docs
  std::function<status(troupe_options&, const std::string&)> set;
};

struct sampling_option_def {
  std::string name;
  std::string help;
  std::string default_text;
  std::function<status(sampling_params&, const std::string&)> set;
};

const std::vector<option_def>& option_table();
const std::vector<sampling_option_def>& sampling_option_table();

// The configuration reference as Markdown (docs/configuration.md is generated from it).
std::string options_markdown();

}  // namespace troupe
