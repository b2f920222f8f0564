// Host-side conversions between float32 and the 16-bit device dtypes (bf16 round-to-nearest-even,
// fp16 IEEE half), for weight upload and for tests' references.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/kernel_types.h"

namespace troupe {

inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t mag = x & 0x7fffffffu;
  if (mag >= 0x7f800000u) return static_cast<uint16_t>(sign | (mag > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (mag < 0x38800000u) {  // subnormal half (or zero): round mag * 2^24 to nearest even
    float a;
    std::memcpy(&a, &mag, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
  }
  const uint32_t e = ((mag >> 23) - 112u) << 10, m = mag & 0x7fffffu;
  uint32_t h = e | (m >> 13);
  const uint32_t rest = m & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = std::ldexp(static_cast<float>(m), -24);
    return sign ? -v : v;
  }
  uint32_t u = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112u) << 23) | (m << 13));
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t float_to_device_bits(kernel_dtype dt, float f) {
  return dt == kernel_dtype::bf16 ? float_to_bf16_bits(f) : float_to_half_bits(f);
}
inline float device_bits_to_float(kernel_dtype dt, uint16_t b) {
  return dt == kernel_dtype::bf16 ? bf16_bits_to_float(b) : half_bits_to_float(b);
}
// Rounds a float to the nearest value the device dtype holds.
inline float round_to_device(kernel_dtype dt, float f) { return device_bits_to_float(dt, float_to_device_bits(dt, f)); }

}  // namespace troupe
