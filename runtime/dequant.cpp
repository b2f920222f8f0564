// Dequantizers for GGML block formats to float32, one function per type, each a transcription of
// the block layout in ggml-common.h (field order and sizes in the comment above each function).
// Sources may be unaligned (GGUF only aligns tensors, not blocks), so every field is memcpy'd.
#include "runtime/dequant.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace troupe {
namespace {

constexpr int64_t qk_k = 256;  // elements per K-quant super-block

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
float load_half(const uint8_t* p) { return fp16_to_f32(load_u16(p)); }

// Plain types: one element per "block".
template <class T>
void convert_plain(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}

// block_q4_0 {half d; u8 qs[16]} (18 B): x[j] = (lo(qs[j]) - 8) d, x[j+16] = (hi(qs[j]) - 8) d.
void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// block_q4_1 {half d; half m; u8 qs[16]} (20 B): x[j] = lo(qs[j]) d + m, x[j+16] = hi(qs[j]) d + m.
void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// block_q5_0 {half d; u8 qh[4]; u8 qs[16]} (22 B): bit j of qh is bit 4 of element j (0..31).
void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int xh0 = static_cast<int>(((qh >> j) << 4) & 0x10);
    const int xh1 = static_cast<int>((qh >> (j + 12)) & 0x10);
    y[j] = static_cast<float>(((qs[j] & 0x0F) | xh0) - 16) * d;
    y[j + 16] = static_cast<float>(((qs[j] >> 4) | xh1) - 16) * d;
  }
}

// block_q5_1 {half d; half m; u8 qh[4]; u8 qs[16]} (24 B): as q5_0 without the -16, plus m.
void dequant_q5_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int xh0 = static_cast<int>(((qh >> j) << 4) & 0x10);
    const int xh1 = static_cast<int>((qh >> (j + 12)) & 0x10);
    y[j] = static_cast<float>((qs[j] & 0x0F) | xh0) * d + m;
    y[j + 16] = static_cast<float>((qs[j] >> 4) | xh1) * d + m;
  }
}

// block_q8_0 {half d; i8 qs[32]} (34 B): x[j] = qs[j] d.
void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

// block_q2_K {u8 scales[16]; u8 qs[64]; half d; half dmin} (84 B): 16 groups of 16 elements, each
// with a 4-bit scale (low nibble) and 4-bit min (high nibble); 2-bit quants.
void dequant_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* q = b + 16;
  const float d = load_half(b + 80), dmin = load_half(b + 82);
  int is = 0;
  for (int n = 0; n < qk_k; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      for (int half = 0; half < 2; ++half) {
        const uint8_t sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0x0F), ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l)
          *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
      }
      shift += 2;
    }
    q += 32;
  }
}

// block_q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d} (110 B): 6-bit signed scales
// (offset 32) packed in 12 bytes; 2 low bits in qs, the third bit in hmask (set = no -4).
void dequant_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hm = b;
  const uint8_t* q = b + 32;
  const float d_all = load_half(b + 108);
  constexpr uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
  uint32_t aux[4];
  std::memcpy(aux, b + 96, 12);
  const uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
  aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
  aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
  aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
  int8_t scales[16];
  std::memcpy(scales, aux, 16);
  int is = 0;
  uint8_t m = 1;
  for (int n = 0; n < qk_k; n += 128) {
    int shift = 0;
    for (int j = 0; j < 4; ++j) {
      for (int half = 0; half < 2; ++half) {
        const float dl = d_all * static_cast<float>(scales[is++] - 32);
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
          *y++ = dl * static_cast<float>(v);
        }
      }
      shift += 2;
      m = static_cast<uint8_t>(m << 1);
    }
    q += 32;
  }
}

// The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of Q4_K/Q5_K.
void scale_min_k4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// block_q4_K {half d; half dmin; u8 scales[12]; u8 qs[128]} (144 B): 8 sub-blocks of 32; each
// 64-element chunk takes the low nibbles of 32 bytes, then their high nibbles.
void dequant_q4_k(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, m;
    scale_min_k4(is, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    scale_min_k4(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
  }
}

// block_q5_K {half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]} (176 B): Q4_K plus a fifth
// bit per element from qh (bit pair 2c, 2c+1 for chunk c).
void dequant_q5_k(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  uint8_t u1 = 1, u2 = 2;
  for (int is = 0; is < 8; is += 2) {
    uint8_t sc, m;
    scale_min_k4(is, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    scale_min_k4(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * static_cast<float>((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    ql += 32;
    u1 = static_cast<uint8_t>(u1 << 2);
    u2 = static_cast<uint8_t>(u2 << 2);
  }
}

// block_q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; half d} (210 B): 6-bit quants (offset 32),
// 16 sub-blocks of 16 with signed 8-bit scales.
void dequant_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_half(b + 208);
  for (int n = 0; n < qk_k; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is] * q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2] * q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4] * q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6] * q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// block_q8_K {float d; i8 qs[256]; i16 bsums[16]} (292 B): x[j] = qs[j] d.
void dequant_q8_k(const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, 4);
  for (int j = 0; j < qk_k; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[4 + j]));
}

using block_fn = void (*)(const uint8_t*, float*);

struct type_entry {
  uint32_t id;
  ggml_type_traits traits;
  block_fn fn;  // nullptr for plain types (handled separately) and unsupported quants
};

// Sizes from ggml.c's type_traits; every id GGML defines, so sizes can be checked even for types
// troupe cannot dequantize.
constexpr type_entry type_table[] = {
    {0, {"F32", 1, 4, true}, nullptr},          {1, {"F16", 1, 2, true}, nullptr},
    {2, {"Q4_0", 32, 18, true}, dequant_q4_0},  {3, {"Q4_1", 32, 20, true}, dequant_q4_1},
    {6, {"Q5_0", 32, 22, true}, dequant_q5_0},  {7, {"Q5_1", 32, 24, true}, dequant_q5_1},
    {8, {"Q8_0", 32, 34, true}, dequant_q8_0},  {9, {"Q8_1", 32, 36, false}, nullptr},
    {10, {"Q2_K", 256, 84, true}, dequant_q2_k}, {11, {"Q3_K", 256, 110, true}, dequant_q3_k},
    {12, {"Q4_K", 256, 144, true}, dequant_q4_k}, {13, {"Q5_K", 256, 176, true}, dequant_q5_k},
    {14, {"Q6_K", 256, 210, true}, dequant_q6_k}, {15, {"Q8_K", 256, 292, true}, dequant_q8_k},
    {16, {"IQ2_XXS", 256, 66, false}, nullptr}, {17, {"IQ2_XS", 256, 74, false}, nullptr},
    {18, {"IQ3_XXS", 256, 98, false}, nullptr}, {19, {"IQ1_S", 256, 50, false}, nullptr},
    {20, {"IQ4_NL", 32, 18, false}, nullptr},   {21, {"IQ3_S", 256, 110, false}, nullptr},
    {22, {"IQ2_S", 256, 82, false}, nullptr},   {23, {"IQ4_XS", 256, 136, false}, nullptr},
    {24, {"I8", 1, 1, true}, nullptr},          {25, {"I16", 1, 2, true}, nullptr},
    {26, {"I32", 1, 4, true}, nullptr},         {27, {"I64", 1, 8, true}, nullptr},
    {28, {"F64", 1, 8, true}, nullptr},         {29, {"IQ1_M", 256, 56, false}, nullptr},
    {30, {"BF16", 1, 2, true}, nullptr},        {34, {"TQ1_0", 256, 54, false}, nullptr},
    {35, {"TQ2_0", 256, 66, false}, nullptr},   {39, {"MXFP4", 32, 17, false}, nullptr},
};

const type_entry* find_entry(uint32_t type) {
  for (const auto& e : type_table)
    if (e.id == type) return &e;
  return nullptr;
}

}  // namespace

float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  float f;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    f = std::ldexp(static_cast<float>(mant), -24);
    if (sign) f = -f;
    return f;
  }
  uint32_t bits;
  if (exp == 31)
    bits = sign | 0x7F800000u | (mant << 13);  // inf / NaN
  else
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_f32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

const ggml_type_traits* ggml_type_info(uint32_t type) {
  const type_entry* e = find_entry(type);
  return e ? &e->traits : nullptr;
}

std::string ggml_type_name(uint32_t type) {
  const ggml_type_traits* t = ggml_type_info(type);
  return t ? std::string(t->name) : "type " + std::to_string(type);
}

int64_t ggml_row_bytes(uint32_t type, int64_t num_elements) {
  const ggml_type_traits* t = ggml_type_info(type);
  if (!t || num_elements < 0 || num_elements % t->block_size != 0) return -1;
  const int64_t blocks = num_elements / t->block_size;
  if (blocks > std::numeric_limits<int64_t>::max() / t->type_size) return -1;
  return blocks * t->type_size;
}

status dequantize_to_f32(uint32_t type, const uint8_t* src, int64_t num_elements, float* dst) {
  const type_entry* e = find_entry(type);
  if (!e || !e->traits.can_dequantize)
    return make_error(errc::unsupported, "cannot convert tensors of " + ggml_type_name(type) + " to float32");
  if (num_elements < 0 || num_elements % e->traits.block_size != 0)
    return make_error(errc::invalid_argument, std::to_string(num_elements) + " elements is not a whole number of " +
                                                  e->traits.name + " blocks");
  if (num_elements == 0) return ok_status();  // dst may be null for an empty tensor
  switch (static_cast<ggml_type>(type)) {
    case ggml_type::f32: std::memcpy(dst, src, static_cast<size_t>(num_elements) * 4); return ok_status();
    case ggml_type::f16:
      for (int64_t i = 0; i < num_elements; ++i) dst[i] = load_half(src + 2 * i);
      return ok_status();
    case ggml_type::bf16:
      for (int64_t i = 0; i < num_elements; ++i) dst[i] = bf16_to_f32(load_u16(src + 2 * i));
      return ok_status();
    case ggml_type::i8: convert_plain<int8_t>(src, num_elements, dst); return ok_status();
    case ggml_type::i16: convert_plain<int16_t>(src, num_elements, dst); return ok_status();
    case ggml_type::i32: convert_plain<int32_t>(src, num_elements, dst); return ok_status();
    case ggml_type::i64: convert_plain<int64_t>(src, num_elements, dst); return ok_status();
    case ggml_type::f64: convert_plain<double>(src, num_elements, dst); return ok_status();
    default: break;
  }
  const int64_t bs = e->traits.block_size, ts = e->traits.type_size;
  const int64_t num_blocks = num_elements / bs;
  for (int64_t i = 0; i < num_blocks; ++i) e->fn(src + i * ts, dst + i * bs);
  return ok_status();
}

}  // namespace troupe
