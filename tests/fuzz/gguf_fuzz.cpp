// Fuzzes the GGUF reader: gguf_file::parse on the bytes in memory, every typed metadata look-up,
// and, for files that parse, what the loader reads from them through the same bytes in a memfd:
// model config, tokenizer data and the tokenizer built from it, every tensor as float32 and as raw
// GGML blocks (widened row by row as the CPU matmul's weight_matrix does), and the model's weights
// (load_model_weights, matrices mapped from the file where they can be) when the config reads:
// truncated or mistyped tensors must be errors.
#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "runtime/gguf_file.h"
#include "runtime/gguf_model.h"
#include "runtime/model_weights.h"
#include "runtime/weight_matrix.h"

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
  auto cfg = read_gguf_model_config(f.path());
  if (auto ws = open_gguf_weights(f.path()); ws.ok()) {
    // Float32 copies stay small: a tensor's data lies inside the input, and no block format
    // expands a byte to more than ~5 elements.
    for (const tensor_info& t : (*ws)->tensors()) {
      std::vector<float> values;
      (void)(*ws)->read_f32(t.name, values);
      uint32_t type = 0;
      std::vector<uint8_t> raw;
      if (!(*ws)->read_raw(t.name, type, raw).ok() || t.shape.size() != 2) continue;
      const auto d = weight_dtype_from_ggml(type);
      if (!d || !is_quantized(*d)) continue;
      auto m = weight_matrix::from_blocks(std::move(raw), t.shape[0], t.shape[1], *d);
      if (!m.ok()) continue;
      std::vector<float> row(static_cast<size_t>(m->cols));
      for (int64_t r = 0; r < m->rows; ++r) m->row_f32(r, row.data());
    }
    if (cfg.ok())
      if (auto w = load_model_weights(*cfg, **ws, weight_load_options{.mmap = true}); w.ok()) {
        // Matrices mapped from the file (--mmap) must lie inside it: widen each one's first and last row.
        std::vector<const weight_matrix*> ms = {&w->embed, &w->lm_head};
        for (const auto& l : w->layers) ms.insert(ms.end(), {&l.w_qkv, &l.w_o, &l.w_gate_up, &l.w_down});
        for (const weight_matrix* m : ms) {
          if (m->empty()) continue;
          std::vector<float> row(static_cast<size_t>(m->cols));
          m->row_f32(0, row.data());
          m->row_f32(m->rows - 1, row.data());
        }
      }
  }
  auto tok_data = read_gguf_tokenizer_data(f.path());
  if (tok_data.ok()) {
    auto tok = tokenizer::from_data(std::move(tok_data).value());
    if (tok.ok()) (void)tok.value().decode(tok.value().encode("Hello, world! <|im_start|>", true, true));
  }
  return 0;
}
