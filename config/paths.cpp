// Resolves the default model path from the environment (see paths.h).
#include "config/paths.h"

#include <cstdlib>

namespace troupe {

std::string default_model_path() {
  if (const char* m = std::getenv("TROUPE_MODEL"); m && *m) return m;
  std::string cache;
  if (const char* c = std::getenv("TROUPE_CACHE_DIR"); c && *c) cache = c;
  else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) cache = std::string(x) + "/troupe";
  else if (const char* h = std::getenv("HOME"); h && *h) cache = std::string(h) + "/.cache/troupe";
  else cache = "/tmp/troupe-cache";
  return cache + "/models/" + kDefaultModelFile;
}

}  // namespace troupe
