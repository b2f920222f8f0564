// PLACEHOLDER until the listener lands.
#include <cstdio>
#include "tools/troupe/commands.h"
namespace troupe {
int run_serve(const cli_result&) { std::fprintf(stderr, "serve: not built yet\n"); return 1; }
}  // namespace troupe
