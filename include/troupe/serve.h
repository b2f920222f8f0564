// The public way to build a server binary with your own extensions linked in, against the installed
// package: serve_main behaves like `troupe serve` (every option, the config file, `--extensions` by
// name) and adds the extensions you registered in code. Serves until SIGINT or SIGTERM, then drains.
#pragma once

namespace troupe {

class extensions;

// argv as `troupe` gets it: argv[1] must be "serve" (`prog serve --model m.gguf ...`); --help and
// bad options print and return like troupe does. `in_code` may be null. Returns the exit code.
int serve_main(int argc, char** argv, const extensions* in_code = nullptr);

}  // namespace troupe
