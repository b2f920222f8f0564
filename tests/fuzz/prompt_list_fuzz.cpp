// Fuzzes the completions `prompt` field parser (net/prompt_list.h) over the real SmolLM2 tokenizer.
// Input: a JSON value (the field's value). Findings: a crash, an error that is not a 400 naming
// "prompt", a list longer than the bound, an empty prompt, or a token id outside the vocabulary.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "net/prompt_list.h"

namespace {

using namespace troupe;

struct prompt_fixture {
  fuzz::tokenizer_only_engine eng;
  std::shared_ptr<const text_codec> codec = make_engine_codec(eng);
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static prompt_fixture fx;
  const nlohmann::json value = nlohmann::json::parse(data, data + size, nullptr, false);
  if (value.is_discarded() || value.is_null()) return 0;
  prompt_list_options opts;
  opts.codec = fx.codec.get();
  opts.vocab_size = fx.codec->vocab_size();
  opts.max_prompts = 8;
  const auto r = parse_prompt_list(value, opts);
  if (const auto* e = std::get_if<api_error>(&r)) {
    if (e->status != 400 || e->param != "prompt") std::abort();
    return 0;
  }
  const auto& list = std::get<std::vector<prompt_item>>(r);
  if (list.empty() || list.size() > opts.max_prompts) std::abort();
  for (const prompt_item& p : list) {
    if (p.ids.empty()) std::abort();
    for (int32_t id : p.ids)
      if (id < 0 || id >= opts.vocab_size) std::abort();
  }
  return 0;
}
