// --help names what each option takes: INT, FLOAT, SIZE, PATH, the words of an enumeration, nothing
// for a boolean flag; TEXT only where any text is right.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "config/cli.h"
#include "config/option_table.h"
#include "support/cli_parse.h"

namespace troupe {
namespace {

using testing::parse;

// The help line of `--name`: from the flag to the end of the line.
std::string help_line(const std::string& help, const std::string& name) {
  const std::regex line("(^|\\n)\\s+(--" + name + ")( [^\\n]*)?(\\n|$)");
  std::smatch m;
  if (!std::regex_search(help, m, line)) return {};
  return m[2].str() + m[3].str();
}

// What follows the flag on its help line, up to the description (two or more spaces).
std::string shown_value(const std::string& line, const std::string& name) {
  std::string rest = line.substr(name.size() + 2);
  const size_t gap = rest.find("  ");
  if (gap != std::string::npos) rest = rest.substr(0, gap);
  while (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
  if (rest.size() > 4 && rest.compare(rest.size() - 4, 4, " ...") == 0) rest.resize(rest.size() - 4);  // repeatable
  return rest;
}

TEST(cli_help, values_are_shown_by_type) {
  const std::string help = parse({"serve", "--help"}).output;
  ASSERT_FALSE(help.empty());
  EXPECT_EQ(shown_value(help_line(help, "max-batch-size"), "max-batch-size"), "INT") << help;
  EXPECT_EQ(shown_value(help_line(help, "queue-timeout"), "queue-timeout"), "FLOAT") << help;
  EXPECT_EQ(shown_value(help_line(help, "kv-cache-memory"), "kv-cache-memory"), "SIZE") << help;
  EXPECT_EQ(shown_value(help_line(help, "model"), "model"), "PATH") << help;
  EXPECT_EQ(shown_value(help_line(help, "config"), "config"), "PATH") << help;
  EXPECT_EQ(shown_value(help_line(help, "dtype"), "dtype"), "{auto,float32,bfloat16,float16}") << help;
  EXPECT_EQ(shown_value(help_line(help, "device"), "device"), "{cpu,cuda}") << help;
  EXPECT_EQ(shown_value(help_line(help, "enforce-eager"), "enforce-eager"), "") << help;  // a flag
  EXPECT_EQ(shown_value(help_line(help, "workers"), "workers"), "HOST:PORT,...") << help;
  EXPECT_NE(help.find("--no-ignore-eos"), std::string::npos) << "the footer explains --no-";
}

TEST(cli_help, every_option_shows_its_value_type) {
  const std::string help = parse({"serve", "--help"}).output;
  for (const auto& def : option_table()) {
    const std::string line = help_line(help, def.name);
    ASSERT_FALSE(line.empty()) << def.name << " is missing from serve --help";
    const std::string shown = shown_value(line, def.name);
    EXPECT_EQ(shown, def.value.label()) << line;
    if (def.value.kind != value_kind::text) EXPECT_NE(shown, "TEXT") << line;
  }
  const std::string gen = parse({"generate", "--help"}).output;
  for (const auto& def : sampling_option_table()) {
    const std::string line = help_line(gen, def.name);
    ASSERT_FALSE(line.empty()) << def.name << " is missing from generate --help";
    EXPECT_EQ(shown_value(line, def.name), def.value.label()) << line;
  }
  EXPECT_EQ(shown_value(help_line(gen, "temperature"), "temperature"), "FLOAT");
  EXPECT_EQ(shown_value(help_line(gen, "ignore-eos"), "ignore-eos"), "");
  EXPECT_EQ(shown_value(help_line(gen, "prompt-ids"), "prompt-ids"), "INT,...");
}

TEST(cli_help, value_labels) {
  EXPECT_EQ((value_type{value_kind::integer, {}, ""}.label()), "INT");
  EXPECT_EQ((value_type{value_kind::number, {}, ""}.label()), "FLOAT");
  EXPECT_EQ((value_type{value_kind::size, {}, ""}.label()), "SIZE");
  EXPECT_EQ((value_type{value_kind::path, {}, ""}.label()), "PATH");
  EXPECT_EQ((value_type{value_kind::text, {}, ""}.label()), "TEXT");
  EXPECT_EQ((value_type{value_kind::boolean, {}, ""}.label()), "");
  EXPECT_EQ((value_type{value_kind::choice, {"a", "b"}, ""}.label()), "{a,b}");
  EXPECT_EQ((value_type{value_kind::text, {}, "HOST"}.label()), "HOST");
}

TEST(cli_help, the_reference_has_a_value_column) {
  const std::string md = options_markdown();
  EXPECT_NE(md.find("| `--max-batch-size` | `INT` |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `--dtype` | `{auto,float32,bfloat16,float16}` |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `--enforce-eager` | flag (`--no-enforce-eager`) |"), std::string::npos) << md;
}

}  // namespace
}  // namespace troupe
