// The option definitions, once: name, group, help line, default, value type and a setter from
// text. The CLI, the config-file reader and the generated configuration reference (docs) all read
// this table.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/error.h"
#include "config/options.h"
#include "config/sampling_params.h"

namespace troupe {

// What an option's value is. It decides how the command line takes the option (a boolean is a
// flag: `--x`, `--x=false`, `--x false`, `--no-x`) and the name --help and the docs show for it.
enum class value_kind { text, integer, number, boolean, size, path, choice };

struct value_type {
  value_kind kind = value_kind::text;
  std::vector<std::string> choices;  // value_kind::choice: the allowed words
  std::string metavar;               // a more precise name than the kind's, e.g. HOST:PORT
  // INT, FLOAT, SIZE, PATH, TEXT, {a,b,c} for a choice, the metavar if set; "" for a boolean (a flag).
  std::string label() const;
};

struct option_def {
  std::string name;           // long flag without dashes, e.g. "max-batch-size"
  std::string group;          // "model" | "engine" | "memory" | "limits" | "server" | "logging"
  std::string help;           // one line
  std::string default_text;   // as shown in --help and docs
  std::function<status(troupe_options&, const std::string&)> set;
  value_type value;
};

struct sampling_option_def {
  std::string name;
  std::string help;
  std::string default_text;
  std::function<status(sampling_params&, const std::string&)> set;
  value_type value;
};

const std::vector<option_def>& option_table();
const std::vector<sampling_option_def>& sampling_option_table();

// The words a boolean option takes (true/false, 1/0, yes/no, on/off); nullopt for anything else.
std::optional<bool> parse_bool_word(const std::string& text);

// The configuration reference as Markdown (docs/configuration.md is generated from it).
std::string options_markdown();

}  // namespace troupe
