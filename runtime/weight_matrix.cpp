// weight_matrix storage: float32 <-> bfloat16 / float16 conversions (round to nearest even), GGML
// block formats held as read from the file, and row widening through the GGML dequantizers.
#include "runtime/weight_matrix.h"

#include <cstring>

#include "runtime/dequant.h"

namespace troupe {
namespace {

struct dtype_entry {
  weight_dtype dtype;
  const char* name;
  ggml_type type;
};

constexpr dtype_entry dtype_table[] = {
    {weight_dtype::f32, "float32", ggml_type::f32},  {weight_dtype::bf16, "bfloat16", ggml_type::bf16},
    {weight_dtype::f16, "float16", ggml_type::f16},  {weight_dtype::q4_0, "Q4_0", ggml_type::q4_0},
    {weight_dtype::q4_1, "Q4_1", ggml_type::q4_1},   {weight_dtype::q5_0, "Q5_0", ggml_type::q5_0},
    {weight_dtype::q5_1, "Q5_1", ggml_type::q5_1},   {weight_dtype::q8_0, "Q8_0", ggml_type::q8_0},
    {weight_dtype::q4_k, "Q4_K", ggml_type::q4_k},   {weight_dtype::q5_k, "Q5_K", ggml_type::q5_k},
    {weight_dtype::q6_k, "Q6_K", ggml_type::q6_k},
};

const dtype_entry& entry(weight_dtype d) {
  for (const auto& e : dtype_table)
    if (e.dtype == d) return e;
  return dtype_table[0];
}

}  // namespace

result<weight_dtype> parse_weight_dtype(const std::string& name) {
  if (name == "float32" || name == "f32") return weight_dtype::f32;
  if (name == "bfloat16" || name == "bf16") return weight_dtype::bf16;
  if (name == "float16" || name == "f16") return weight_dtype::f16;
  return make_error(errc::invalid_argument, "unknown weight dtype '" + name + "' (float32|bfloat16|float16)");
}

const char* weight_dtype_name(weight_dtype d) { return entry(d).name; }

bool is_quantized(weight_dtype d) {
  return d != weight_dtype::f32 && d != weight_dtype::bf16 && d != weight_dtype::f16;
}

uint32_t weight_dtype_ggml_type(weight_dtype d) { return static_cast<uint32_t>(entry(d).type); }

std::optional<weight_dtype> weight_dtype_from_ggml(uint32_t type) {
  for (const auto& e : dtype_table)
    if (static_cast<uint32_t>(e.type) == type) return e.dtype;
  return std::nullopt;
}

int64_t weight_dtype_block(weight_dtype d) { return ggml_type_info(weight_dtype_ggml_type(d))->block_size; }
int64_t weight_dtype_block_bytes(weight_dtype d) { return ggml_type_info(weight_dtype_ggml_type(d))->type_size; }

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

result<weight_matrix> weight_matrix::from_blocks(std::vector<uint8_t> blocks, int64_t rows, int64_t cols,
                                                 weight_dtype dtype) {
  if (!is_quantized(dtype)) return make_error(errc::invalid_argument, "from_blocks needs a block format");
  const int64_t rb = ggml_row_bytes(weight_dtype_ggml_type(dtype), cols);
  if (rows < 0 || rb < 0 || static_cast<int64_t>(blocks.size()) != rows * rb)
    return make_error(errc::corrupt_file, std::string("a ") + weight_dtype_name(dtype) + " matrix [" +
                                              std::to_string(rows) + ", " + std::to_string(cols) + "] needs " +
                                              std::to_string(rb < 0 ? -1 : rows * rb) + " bytes, got " +
                                              std::to_string(blocks.size()));
  weight_matrix m;
  m.dtype = dtype;
  m.rows = rows;
  m.cols = cols;
  m.quant = std::move(blocks);
  return m;
}

result<weight_matrix> weight_matrix::from_mapped(const uint8_t* data, uint64_t bytes, std::shared_ptr<const void> keep,
                                                 int64_t rows, int64_t cols, weight_dtype dtype) {
  weight_matrix m;
  m.dtype = dtype;
  m.rows = rows;
  m.cols = cols;
  const int64_t rb = m.row_bytes();
  if (rows <= 0 || rb <= 0 || bytes != static_cast<uint64_t>(rows * rb))
    return make_error(errc::invalid_argument, std::string("a ") + weight_dtype_name(dtype) + " view of " +
                                                  std::to_string(bytes) + " bytes does not hold [" + std::to_string(rows) +
                                                  ", " + std::to_string(cols) + "]");
  // The kernels read float32 / 16-bit elements (and the blocks' 16-bit scales) through typed
  // pointers: the view must be aligned to them. GGUF data is 32-byte aligned; safetensors only
  // 8-byte at best, and then every tensor offset is a multiple of its element size.
  const uintptr_t align = dtype == weight_dtype::f32 ? 4 : 2;
  if (reinterpret_cast<uintptr_t>(data) % align != 0)
    return make_error(errc::invalid_argument, std::string("a ") + weight_dtype_name(dtype) + " view is not " +
                                                  std::to_string(align) + "-byte aligned");
  m.mapped = data;
  m.mapping = std::move(keep);
  return m;
}

int64_t weight_matrix::row_bytes() const {
  if (!is_quantized(dtype)) return cols * (dtype == weight_dtype::f32 ? 4 : 2);
  return ggml_row_bytes(weight_dtype_ggml_type(dtype), cols);
}

bool weight_matrix::storage_ok() const {
  if (mapped) return f32.empty() && half.empty() && quant.empty();  // sized by from_mapped
  const size_t n = static_cast<size_t>(rows * cols);
  switch (dtype) {
    case weight_dtype::f32: return f32.size() == n;
    case weight_dtype::bf16:
    case weight_dtype::f16: return half.size() == n;
    default: {
      const int64_t rb = row_bytes();
      return rb >= 0 && quant.size() == static_cast<size_t>(rows * rb);
    }
  }
}

void weight_matrix::row_f32(int64_t r, float* out) const {
  const size_t base = static_cast<size_t>(r * cols);
  switch (dtype) {
    case weight_dtype::f32: std::memcpy(out, f32_data() + base, static_cast<size_t>(cols) * 4); break;
    case weight_dtype::bf16:
      for (int64_t i = 0; i < cols; ++i) out[i] = bf16_bits_to_f32(half_data()[base + i]);
      break;
    case weight_dtype::f16:
      for (int64_t i = 0; i < cols; ++i) out[i] = f16_bits_to_f32(half_data()[base + i]);
      break;
    default:
      // Cannot fail: storage_ok() was checked when the model was created.
      (void)dequantize_to_f32(weight_dtype_ggml_type(dtype), quant_data() + r * row_bytes(), cols, out);
      break;
  }
}

}  // namespace troupe
