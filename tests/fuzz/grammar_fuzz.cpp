// Fuzzes the grammar front ends that parse text: the first byte picks GBNF (0), the regex subset (1)
// or a choice list (2); the rest is the text. Grammars that compile are driven a few steps with
// masks checked against accept(). Findings: a crash, a hang (left recursion, runaway expansion),
// an error that is not invalid_argument, a mask/accept disagreement or a dead end.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "grammar_fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  if (size < 1 || size > 4096) return 0;
  static const constraint_spec::kind kinds[] = {constraint_spec::kind::grammar, constraint_spec::kind::regex,
                                                constraint_spec::kind::choice};
  const constraint_spec spec{kinds[data[0] % 3], std::string(reinterpret_cast<const char*>(data + 1), size - 1)};
  auto c = compile_constraint_for_vocab(spec, fuzz::grammar_fuzz_vocab());
  if (!c.ok()) {
    if (c.err().code != errc::invalid_argument || c.err().message.empty()) std::abort();
    return 0;
  }
  fuzz::drive_constraint(**c, data, size);
  return 0;
}
