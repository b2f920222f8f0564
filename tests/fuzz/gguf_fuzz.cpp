// Fuzzes the GGUF reader: gguf_file::parse on the bytes in memory, every typed metadata look-up,
// and, for files that parse, what the loader reads from them (model config, tokenizer data and the
// tokenizer built from it) through the same bytes in a memfd.
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "runtime/gguf_file.h"
#include "runtime/gguf_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  auto file = gguf_file::parse(data, size, "fuzz.gguf");
  if (!file.ok()) return 0;
  const gguf_file& g = *file.value();
  for (const auto& [key, value] : g.metadata()) {
    (void)g.get_int(key);
    (void)g.get_float(key);
    (void)g.get_bool(key);
    (void)g.get_string(key);
  }
  uint64_t sum = 0;
  for (const gguf_tensor& t : g.tensors()) {
    // Every tensor's bytes must lie inside the input: touch the first and the last.
    if (t.num_bytes > 0) sum += t.data[0] + t.data[t.num_bytes - 1];
  }
  (void)sum;

  fuzz::memfd_file f(data, size);
  (void)read_gguf_model_config(f.path());
  auto tok_data = read_gguf_tokenizer_data(f.path());
  if (tok_data.ok()) {
    auto tok = tokenizer::from_data(std::move(tok_data).value());
    if (tok.ok()) (void)tok.value().decode(tok.value().encode("Hello, world! <|im_start|>", true, true));
  }
  return 0;
}
