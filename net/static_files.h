// The web playground's files (net/static/*), compiled into the binary at build time
// (cmake/EmbedFiles.cmake writes the table). Lookup is by exact file name against that table:
// nothing touches the filesystem, so no request path can reach outside it.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace troupe {

struct embedded_file {
  const char* name;  // file name inside net/static, e.g. "app.js"; nullptr ends the table
  const char* data;
  std::size_t size;
};

// Generated: every file of net/static, then {nullptr, nullptr, 0}.
extern const embedded_file k_embedded_files[];

struct static_file {
  std::string_view content_type;
  std::string_view body;
};

// The Content-Type for a file name, by extension (application/octet-stream when unknown).
std::string_view static_content_type(std::string_view name);

// The file served at a request path: "/" is index.html, "/static/<name>" a file of net/static
// (exact name, no sub-folders). nullopt for anything else.
std::optional<static_file> find_static_file(std::string_view path);

}  // namespace troupe
