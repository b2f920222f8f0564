// A main() for the fuzz targets in builds without libFuzzer (g++): feeds every file named on the
// command line, or found (sorted) in a directory named there, to LLVMFuzzerTestOneInput once.
// A missing directory counts as empty; subdirectories (regressions/<target>/pending/: findings not
// fixed yet) are skipped. A finding aborts, which fails the ctest.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void run_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::fprintf(stderr, "replay %s (%zu bytes)\n", p.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  size_t num_inputs = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    if (fs::is_directory(arg)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(arg)) {  // not pending/: open findings
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) run_file(f);
      num_inputs += files.size();
    } else if (fs::is_regular_file(arg)) {
      run_file(arg);
      ++num_inputs;
    }
  }
  std::printf("replayed %zu inputs\n", num_inputs);
  return 0;
}
