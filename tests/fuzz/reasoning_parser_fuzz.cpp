// Fuzzes reasoning_parser: the input is cut into streamed pieces at every 0x01 byte; feeding the
// pieces must give exactly the split of the whole text, and no byte may be lost or invented
// (reasoning + content + the tags removed = the input).
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/reasoning_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  const std::string raw(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> pieces(1);
  std::string whole;
  for (char ch : raw) {
    if (ch == '\x01') {
      pieces.emplace_back();
    } else {
      pieces.back() += ch;
      whole += ch;
    }
  }
  for (bool start_in_reasoning : {false, true}) {
    const reasoning_split expected = reasoning_parser::split(whole, start_in_reasoning);
    reasoning_parser p(start_in_reasoning);
    reasoning_split got;
    for (const auto& piece : pieces) {
      reasoning_split s = p.feed(piece);
      got.reasoning += s.reasoning;
      got.content += s.content;
    }
    reasoning_split tail = p.finish();
    got.reasoning += tail.reasoning;
    got.content += tail.content;
    if (got.reasoning != expected.reasoning || got.content != expected.content) __builtin_trap();
    const size_t removed = whole.size() - expected.reasoning.size() - expected.content.size();
    if (removed != 0 && removed != 7 && removed != 8 && removed != 15) __builtin_trap();
  }
  return 0;
}
