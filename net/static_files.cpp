// Static playground files (see static_files.h).
#include "net/static_files.h"

namespace troupe {

std::string_view static_content_type(std::string_view name) {
  const auto ends = [&](std::string_view ext) { return name.ends_with(ext); };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".ico")) return "image/x-icon";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

std::optional<static_file> find_static_file(std::string_view path) {
  std::string_view name;
  if (path == "/") {
    name = "index.html";
  } else if (path.starts_with("/static/")) {
    name = path.substr(8);
  } else {
    return std::nullopt;
  }
  if (name.empty() || name.find('/') != std::string_view::npos) return std::nullopt;
  for (const embedded_file* f = k_embedded_files; f->name; ++f) {
    if (name == f->name) return static_file{static_content_type(name), std::string_view(f->data, f->size)};
  }
  return std::nullopt;
}

}  // namespace troupe
