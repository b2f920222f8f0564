// The shared Prometheus text helpers (config/prometheus_text.h) that /metrics and the cluster
// router's worker families both use.
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "config/prometheus_text.h"

namespace troupe {
namespace {

TEST(prom_escape_label, escapes_backslash_quote_and_newline_only) {
  EXPECT_EQ(prom_escape_label("plain-name_1.0"), "plain-name_1.0");
  EXPECT_EQ(prom_escape_label(R"(C:\models\x)"), R"(C:\\models\\x)");
  EXPECT_EQ(prom_escape_label(R"(say "hi")"), R"(say \"hi\")");
  EXPECT_EQ(prom_escape_label("two\nlines"), "two\\nlines");
  EXPECT_EQ(prom_escape_label("tab\tand\r"), "tab\tand\r");  // not special in the text format
  EXPECT_EQ(prom_escape_label("日本語"), "日本語");
  EXPECT_EQ(prom_escape_label(""), "");
}

TEST(prom_escape_label, an_escaped_value_cannot_close_the_label) {
  // A value ending in a backslash must not escape the closing quote: `\` -> `\\`.
  const std::string v = "worker\\";
  const std::string line = "m{worker=\"" + prom_escape_label(v) + "\"} 1";
  EXPECT_EQ(line, "m{worker=\"worker\\\\\"} 1");
  // An injected `"} 1\nfake{` stays inside the label value.
  EXPECT_EQ(prom_escape_label("\"} 1\nfake{"), "\\\"} 1\\nfake{");
}

TEST(prom_number, formats_finite_and_special_values) {
  EXPECT_EQ(prom_number(0.25), "0.25");
  EXPECT_EQ(prom_number(1), "1");
  EXPECT_EQ(prom_number(-3.5), "-3.5");
  EXPECT_EQ(prom_number(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(prom_number(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(prom_number(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(prom_family_header, writes_help_then_type) {
  EXPECT_EQ(prom_family_header("troupe:x_total", "counter", "Things counted."),
            "# HELP troupe:x_total Things counted.\n# TYPE troupe:x_total counter\n");
}

}  // namespace
}  // namespace troupe
