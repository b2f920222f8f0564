// Prometheus text exposition (format 0.0.4), the pieces every layer that renders metrics shares:
// label-value escaping, number formatting and a family's HELP/TYPE header. Pure string helpers, so
// the listener's /metrics (net/) and the cluster router's worker families (actors/) use one copy.
#pragma once

#include <string>
#include <string_view>

namespace troupe {

// A label value between double quotes: backslash, double quote and line feed escaped
// (\\, \", \n); everything else, UTF-8 included, passes through.
std::string prom_escape_label(std::string_view value);

// Shortest round-trip formatting; +Inf, -Inf, NaN as Prometheus spells them.
std::string prom_number(double v);

// "# HELP name help\n# TYPE name type\n": once per metric family, before its samples.
std::string prom_family_header(std::string_view name, std::string_view type, std::string_view help);

}  // namespace troupe
