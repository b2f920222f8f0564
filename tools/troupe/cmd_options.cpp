// `troupe options --markdown`: prints the configuration reference, the table generated from
// config/option_table.cpp by options_markdown() under a short preamble. docs/configuration.md is
// exactly this output; tests/e2e/test_docs.py keeps the two equal.
#include <cstdio>
#include <string>

#include "config/option_table.h"
#include "tools/troupe/commands.h"

namespace troupe {
namespace {

// A '|' inside a cell (e.g. "auto|float32") would split it: escape every pipe of a table row that
// is not one of its cell separators (" | ", the leading "| " and the trailing " |").
std::string escape_cell_pipes(const std::string& md) {
  std::string out;
  size_t pos = 0;
  while (pos < md.size()) {
    size_t end = md.find('\n', pos);
    if (end == std::string::npos) end = md.size();
    std::string line = md.substr(pos, end - pos);
    if (line.rfind("| `--", 0) == 0 && line.size() >= 4 && line.compare(line.size() - 2, 2, " |") == 0) {
      std::string body = line.substr(2, line.size() - 4);
      std::string fixed;
      for (size_t i = 0; i < body.size(); ++i) {
        const bool separator = body[i] == '|' && i > 0 && body[i - 1] == ' ' && i + 1 < body.size() && body[i + 1] == ' ';
        if (body[i] == '|' && !separator) fixed += "\\|";
        else fixed += body[i];
      }
      line = "| " + fixed + " |";
    }
    out += line;
    if (end < md.size()) out += '\n';
    pos = end + 1;
  }
  return out;
}

}  // namespace

int run_options(const cli_result&) {
  std::string md =
      "# Configuration reference\n\n"
      "Every option of `troupe serve`, `troupe generate` and `troupe plan`. On the command line it is\n"
      "`--name value` or `--name=value`; a boolean is a flag (`--name` alone is true, `--name=false` or\n"
      "`--no-name` false). In a config file (`--config troupe.json`) the key is the name with `_` or\n"
      "`-` and a boolean takes `true` or `false`; flags on the command line override the file.\n"
      "`troupe serve --help` prints the same options one line each. Sampling options of\n"
      "`troupe generate` (`--temperature`, `--top-p`, ...) are listed by `troupe generate --help`.\n\n"
      "The value column says what an option takes: `INT`, `FLOAT`, `SIZE` (bytes with an optional\n"
      "unit: `20GiB`, `512MB`, `1048576`), `PATH`, `TEXT` or a more precise form, or `{a,b}`, the allowed\n"
      "words.\n\n"
      "This file is generated from the option definitions (config/option_table.cpp); do not edit it by\n"
      "hand. Regenerate it with\n\n"
      "```sh\n"
      "build/tools/troupe options --markdown > docs/configuration.md\n"
      "```\n\n"
      "(`tests/e2e/test_docs.py` fails when it is out of date.)\n\n";
  md += escape_cell_pipes(options_markdown());
  std::fwrite(md.data(), 1, md.size(), stdout);
  return 0;
}

}  // namespace troupe
