// config/ is the ground floor (config <- runtime <- actors <- net): nothing in it may include a
// header of a layer above. Reads the sources, so a wrong include fails here, not in a later merge.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

namespace troupe {
namespace {

TEST(layering, config_includes_nothing_from_the_layers_above) {
  const std::filesystem::path dir = std::filesystem::path(TROUPE_SOURCE_DIR) / "config";
  const std::regex upward(R"re(^\s*#\s*include\s*"(runtime|actors|net|kernels|tools)/)re");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const auto ext = entry.path().extension();
    if (ext != ".h" && ext != ".cpp") continue;
    ++files;
    std::ifstream in(entry.path());
    std::string line;
    for (int n = 1; std::getline(in, line); ++n)
      EXPECT_FALSE(std::regex_search(line, upward)) << entry.path().filename().string() << ":" << n << ": " << line;
  }
  EXPECT_GT(files, 5);  // the folder was found and read
}

}  // namespace
}  // namespace troupe
