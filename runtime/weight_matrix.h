// A weight matrix [rows, cols] (nn.Linear's [out, in], row-major) stored in float32, bfloat16 or
// float16. The CPU matmul reads the 16-bit forms directly and widens them in registers: decode at
// batch 1 streams every weight once per token, so halving the bytes nearly halves the step time.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "config/error.h"

namespace troupe {

enum class weight_dtype : uint8_t { f32, bf16, f16 };

// "float32" | "bfloat16" | "float16" (also "f32", "bf16", "f16").
result<weight_dtype> parse_weight_dtype(const std::string& name);
const char* weight_dtype_name(weight_dtype d);

struct weight_matrix {
  weight_dtype dtype = weight_dtype::f32;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> f32;      // [rows, cols] when dtype == f32
  std::vector<uint16_t> half;  // [rows, cols] bf16 or f16 bits otherwise

  // Takes float32 values [rows, cols] and stores them as `dtype` (round to nearest even; exact
  // when the values came from that dtype).
  static weight_matrix from_f32(std::vector<float> values, int64_t rows, int64_t cols, weight_dtype dtype);

  bool empty() const { return rows == 0; }
  int64_t num_bytes() const { return static_cast<int64_t>(f32.size() * 4 + half.size() * 2); }
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
