// Fuzzes the JSON Schema compiler (json_schema_grammar through compile_constraint) with the input
// as schema text (a leading '!' compiles the rest with strict = false); schemas that compile are
// driven a few steps with masks checked against accept().
// Findings: a crash, a hang, an error that is not invalid_argument, a mask/accept disagreement.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "grammar_fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  if (size > 4096) return 0;
  const bool lenient = size > 0 && data[0] == '!';
  const std::string text(reinterpret_cast<const char*>(data) + (lenient ? 1 : 0), size - (lenient ? 1 : 0));
  auto c = compile_constraint_for_vocab(constraint_spec{constraint_spec::kind::json_schema, text, !lenient},
                                        fuzz::grammar_fuzz_vocab());
  if (!c.ok()) {
    if (c.err().code != errc::invalid_argument || c.err().message.empty()) std::abort();
    return 0;
  }
  fuzz::drive_constraint(**c, data, size);
  return 0;
}
