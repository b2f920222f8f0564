// Logging: one named spdlog logger per component ("config", "runtime", "scheduler", "net", ...),
// all sharing one sink and one level set by --log-level. Library code logs only through these.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace troupe {

// Returns the component's logger, creating it on first use (thread-safe).
std::shared_ptr<spdlog::logger> logger(const std::string& component);

// Sets the level of every component logger, current and future. Accepts
// trace|debug|info|warn|error|critical|off; returns false for anything else.
bool set_log_level(const std::string& level);

}  // namespace troupe
