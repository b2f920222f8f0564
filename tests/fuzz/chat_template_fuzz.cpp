// Fuzzes the chat template engine: the input is a Jinja template source, parsed and then rendered
// over fixed messages (system, user, assistant, tool) with and without the generation prompt.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  using json = nlohmann::json;
  static const json messages = json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi <b>\u00e9\u4e2d</b>"},
    {"role": "assistant", "content": "Hello."},
    {"role": "tool", "content": "{\"x\": [1, 2.5, null, true]}"},
    {"role": "user", "content": ""}
  ])");
  static const json extra = json::parse(R"({"tools": [{"name": "f", "parameters": {}}], "date_string": "1 Jan 2025"})");
  chat_template_options opt;
  opt.bos_token = "<s>";
  opt.eos_token = "</s>";
  opt.fixed_time = 1700000000;
  auto t = chat_template::parse(std::string(reinterpret_cast<const char*>(data), size), opt);
  if (!t.ok()) return 0;
  (void)t.value().render(messages, size % 2 == 0, extra);
  return 0;
}
