// A weight matrix [rows, cols] (nn.Linear's [out, in], row-major) stored in float32, bfloat16,
// float16 or a GGML block format (Q4_0 ... Q6_K, rows of whole blocks, exactly as in the GGUF file).
// The CPU matmul reads every form directly and widens it in registers: decode streams every weight
// once per token, so the bytes held are the step time. The storage is either owned (the vectors)
// or a view into a read-only file mapping kept alive by `mapping` (--mmap): readers go through
// f32_data() / half_data() / quant_data(), which answer for both.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/error.h"

namespace troupe {

enum class weight_dtype : uint8_t { f32, bf16, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k };

// The GGML block formats held as they are in the file; their GGML type id, elements per block and
// bytes per block. A non-block dtype has block 1.
bool is_quantized(weight_dtype d);
uint32_t weight_dtype_ggml_type(weight_dtype d);
// The weight_dtype holding GGML type `ggml_type` (F32, F16, BF16 and the block formats above), or
// nullopt for a type the CPU matmul cannot read.
std::optional<weight_dtype> weight_dtype_from_ggml(uint32_t ggml_type);
int64_t weight_dtype_block(weight_dtype d);
int64_t weight_dtype_block_bytes(weight_dtype d);

// "float32" | "bfloat16" | "float16" (also "f32", "bf16", "f16").
result<weight_dtype> parse_weight_dtype(const std::string& name);
const char* weight_dtype_name(weight_dtype d);

struct weight_matrix {
  weight_dtype dtype = weight_dtype::f32;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> f32;      // [rows, cols] when dtype == f32
  std::vector<uint16_t> half;  // [rows, cols] bf16 or f16 bits
  std::vector<uint8_t> quant;  // [rows, row_bytes()] GGML blocks for the quantized dtypes
  // A view: [rows, row_bytes()] bytes of `dtype` inside a file mapping that `mapping` owns; the
  // vectors are then empty. Set only by from_mapped.
  const uint8_t* mapped = nullptr;
  std::shared_ptr<const void> mapping;

  // Takes float32 values [rows, cols] and stores them as `dtype` (round to nearest even; exact
  // when the values came from that dtype).
  static weight_matrix from_f32(std::vector<float> values, int64_t rows, int64_t cols, weight_dtype dtype);

  // Takes GGML blocks [rows, row_bytes] as they are (cols a whole number of blocks).
  static result<weight_matrix> from_blocks(std::vector<uint8_t> blocks, int64_t rows, int64_t cols, weight_dtype dtype);

  // Points at `bytes` of `dtype` stored exactly as the kernels read them ([rows, row_bytes()],
  // aligned to the element type) without copying; `keep` owns the mapping they live in. Errors when
  // the size or the alignment does not fit (the caller then copies).
  static result<weight_matrix> from_mapped(const uint8_t* data, uint64_t bytes, std::shared_ptr<const void> keep,
                                           int64_t rows, int64_t cols, weight_dtype dtype);

  bool empty() const { return rows == 0; }
  bool is_mapped() const { return mapped != nullptr; }
  // The storage, owned or mapped: [rows, cols] float32 / 16-bit bits, or [rows, row_bytes()] blocks.
  const float* f32_data() const { return mapped ? reinterpret_cast<const float*>(mapped) : f32.data(); }
  const uint16_t* half_data() const { return mapped ? reinterpret_cast<const uint16_t*>(mapped) : half.data(); }
  const uint8_t* quant_data() const { return mapped ? mapped : quant.data(); }
  // Bytes held, owned or mapped (what the memory plan counts), and the mapped share of them.
  int64_t num_bytes() const {
    return mapped ? rows * row_bytes() : static_cast<int64_t>(f32.size() * 4 + half.size() * 2 + quant.size());
  }
  int64_t mapped_bytes() const { return mapped ? rows * row_bytes() : 0; }
  // Bytes of one stored row.
  int64_t row_bytes() const;
  // The storage holds exactly rows x cols elements of dtype.
  bool storage_ok() const;
  // Widens row r into out[cols].
  void row_f32(int64_t r, float* out) const;
};

// Scalar conversions between float32 and 16-bit storage (round to nearest even when narrowing).
inline float bf16_bits_to_f32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7f800000u) == 0x7f800000u) return static_cast<uint16_t>((b >> 16) | ((b & 0xffffu) ? 0x40u : 0u));
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}
inline float f16_bits_to_f32(uint16_t h) {
  _Float16 v;
  std::memcpy(&v, &h, 2);
  return static_cast<float>(v);
}
inline uint16_t f32_to_f16_bits(float f) {
  const _Float16 v = static_cast<_Float16>(f);
  uint16_t h;
  std::memcpy(&h, &v, 2);
  return h;
}

}  // namespace troupe
