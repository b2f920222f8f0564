// weight_matrix storage conversions: float32 <-> bfloat16 / float16, round to nearest even.
#include "runtime/weight_matrix.h"

#include <cstring>

namespace troupe {

result<weight_dtype> parse_weight_dtype(const std::string& name) {
  if (name == "float32" || name == "f32") return weight_dtype::f32;
  if (name == "bfloat16" || name == "bf16") return weight_dtype::bf16;
  if (name == "float16" || name == "f16") return weight_dtype::f16;
  return make_error(errc::invalid_argument, "unknown weight dtype '" + name + "' (float32|bfloat16|float16)");
}

const char* weight_dtype_name(weight_dtype d) {
  switch (d) {
    case weight_dtype::f32: return "float32";
    case weight_dtype::bf16: return "bfloat16";
    case weight_dtype::f16: return "float16";
  }
  return "?";
}

weight_matrix weight_matrix::from_f32(std::vector<float> values, int64_t rows, int64_t cols, weight_dtype dtype) {
  weight_matrix m;
  m.dtype = dtype;
  m.rows = rows;
  m.cols = cols;
  if (dtype == weight_dtype::f32) {
    m.f32 = std::move(values);
    return m;
  }
  m.half.resize(values.size());
  if (dtype == weight_dtype::bf16)
    for (size_t i = 0; i < values.size(); ++i) m.half[i] = f32_to_bf16_bits(values[i]);
  else
    for (size_t i = 0; i < values.size(); ++i) m.half[i] = f32_to_f16_bits(values[i]);
  return m;
}

void weight_matrix::row_f32(int64_t r, float* out) const {
  const size_t base = static_cast<size_t>(r * cols);
  switch (dtype) {
    case weight_dtype::f32: std::memcpy(out, f32.data() + base, static_cast<size_t>(cols) * 4); break;
    case weight_dtype::bf16:
      for (int64_t i = 0; i < cols; ++i) out[i] = bf16_bits_to_f32(half[base + i]);
      break;
    case weight_dtype::f16:
      for (int64_t i = 0; i < cols; ++i) out[i] = f16_bits_to_f32(half[base + i]);
      break;
  }
}

}  // namespace troupe
