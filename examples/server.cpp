// example_server: `troupe serve` with the example extensions linked in (examples/extensions/*.cpp:
// rate_limiter, audit_log, echo_stats, faulty_filter). Enable them by name, in order:
//   example_server serve --extensions rate_limiter,audit_log,echo_stats
// or in a config file: {"extensions": ["rate_limiter", "audit_log", "echo_stats"]}.
// Only the public API: the same program builds against the installed package.
#include "troupe/extension.h"
#include "troupe/serve.h"

int main(int argc, char** argv) {
  // Extensions registered in code would go here: troupe::extensions ext; ext.add_filter(...);
  // then troupe::serve_main(argc, argv, &ext).
  return troupe::serve_main(argc, argv);
}
