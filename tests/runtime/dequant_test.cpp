// Dequantization against hand-computed blocks (each expectation worked out from GGML's block layout
// in the comment beside it) and against random blocks dequantized by the gguf Python package
// (tests/data/gguf_dequant_blocks.json, made by tools/gguf_reference.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/dequant.h"

namespace troupe {
namespace {

void put_half(std::vector<uint8_t>& b, size_t at, uint16_t h) { std::memcpy(b.data() + at, &h, 2); }

std::vector<float> deq(ggml_type t, const std::vector<uint8_t>& b, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n), std::nanf(""));
  auto st = dequantize_to_f32(static_cast<uint32_t>(t), b.data(), n, y.data());
  EXPECT_TRUE(st.ok()) << st.err().to_string();
  return y;
}

TEST(gguf_dequant, half_and_bfloat16_are_exact) {
  EXPECT_EQ(fp16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_f32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(fp16_to_f32(0x8000), -0.0f);
  EXPECT_TRUE(std::signbit(fp16_to_f32(0x8000)));
  EXPECT_EQ(fp16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7E00)));
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC0A0), -5.0f);
  std::vector<uint8_t> b(4);
  put_half(b, 0, 0x3800);  // 0.5
  put_half(b, 2, 0xBC00);  // -1
  EXPECT_EQ(deq(ggml_type::f16, b, 2), (std::vector<float>{0.5f, -1.0f}));
}

TEST(gguf_dequant, q4_0_block) {
  // {half d = 0.5; qs[j] = j | (15 - j) << 4}: x[j] = (j - 8) d, x[j + 16] = (15 - j - 8) d.
  std::vector<uint8_t> b(18);
  put_half(b, 0, 0x3800);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto y = deq(ggml_type::q4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f) << j;
    EXPECT_EQ(y[j + 16], (7 - j) * 0.5f) << j;
  }
}

TEST(gguf_dequant, q4_1_block_low_nibbles_first) {
  // {d = 0.25; m = -1; qs[j] = j | (15 - j) << 4}: x[j] = j d + m, x[j + 16] = (15 - j) d + m.
  std::vector<uint8_t> b(20);
  put_half(b, 0, 0x3400);
  put_half(b, 2, 0xBC00);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto y = deq(ggml_type::q4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 0.25f - 1.0f) << j;
    EXPECT_EQ(y[j + 16], (15 - j) * 0.25f - 1.0f) << j;
  }
}

TEST(gguf_dequant, q5_0_and_q5_1_take_the_fifth_bit_from_qh) {
  // qh bit e is bit 4 of element e; set for elements 3 and 20. qs = 0x21: low 1, high 2.
  const uint32_t qh = (1u << 3) | (1u << 20);
  std::vector<uint8_t> b0(22, 0x21);
  put_half(b0, 0, 0x3C00);  // d = 1
  std::memcpy(b0.data() + 2, &qh, 4);
  auto y0 = deq(ggml_type::q5_0, b0, 32);
  for (int e = 0; e < 32; ++e) {
    const int q = (e < 16 ? 1 : 2) | ((e == 3 || e == 20) ? 16 : 0);
    EXPECT_EQ(y0[e], static_cast<float>(q - 16)) << e;
  }
  std::vector<uint8_t> b1(24, 0x21);
  put_half(b1, 0, 0x4000);  // d = 2
  put_half(b1, 2, 0x3800);  // m = 0.5
  std::memcpy(b1.data() + 4, &qh, 4);
  auto y1 = deq(ggml_type::q5_1, b1, 32);
  for (int e = 0; e < 32; ++e) {
    const int q = (e < 16 ? 1 : 2) | ((e == 3 || e == 20) ? 16 : 0);
    EXPECT_EQ(y1[e], 2.0f * q + 0.5f) << e;
  }
}

TEST(gguf_dequant, q8_0_and_q8_k_blocks) {
  std::vector<uint8_t> b(34 * 2);
  for (int blk = 0; blk < 2; ++blk) {
    put_half(b, blk * 34, blk == 0 ? 0x3000 : 0xBC00);  // 0.125, -1
    for (int j = 0; j < 32; ++j) b[blk * 34 + 2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  }
  auto y = deq(ggml_type::q8_0, b, 64);
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(y[j], (j - 16) * 0.125f);
    EXPECT_EQ(y[32 + j], -(j - 16) * 1.0f);
  }
  std::vector<uint8_t> k(292, 0);  // {float d; i8 qs[256]; i16 bsums[16]}
  const float d = 0.5f;
  std::memcpy(k.data(), &d, 4);
  for (int j = 0; j < 256; ++j) k[4 + j] = static_cast<uint8_t>(j);  // as int8: j - 256 above 127
  auto yk = deq(ggml_type::q8_k, k, 256);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(yk[j], 0.5f * static_cast<int8_t>(j)) << j;
}

TEST(gguf_dequant, q6_k_block) {
  // {ql[128]; qh[64]; i8 scales[16]; half d}; all quants 0 -> q = -32 -> x = -32 d sc.
  std::vector<uint8_t> b(210, 0);
  put_half(b, 208, 0x3C00);
  for (int s = 0; s < 16; ++s) b[192 + s] = 1;
  b[192 + 0] = 2;   // scale of elements 0..15
  b[192 + 8] = 3;   // scale of elements 128..143
  b[0] = 0x05;      // element 0: low nibble 5, qh[0] bits 0-1 = 1 -> (5 | 16) - 32 = -11
  b[128] = 0x01 | (2 << 6);  // element 96 high bits: qh[0] bits 6-7 = 2
  b[32] = 0x70;     // element 96: high nibble of ql[32] = 7 -> (7 | 32) - 32 = 7
  b[64] = 0x0F;     // element 128: ql[64] low nibble, qh[32] bits 0-1
  b[128 + 32] = 3;  // -> (15 | 48) - 32 = 31
  auto y = deq(ggml_type::q6_k, b, 256);
  EXPECT_EQ(y[0], -22.0f);   // 2 * -11
  EXPECT_EQ(y[1], -64.0f);   // 2 * -32
  EXPECT_EQ(y[16], -32.0f);  // scale 1
  EXPECT_EQ(y[96], 7.0f);    // scales[6] = 1
  EXPECT_EQ(y[128], 93.0f);  // 3 * 31
  EXPECT_EQ(y[255], -32.0f);
}

TEST(gguf_dequant, q4_k_and_q5_k_blocks) {
  // {half d; half dmin; u8 scales[12]; [qh[32] for Q5_K]; u8 qs[128]}, d = 1, dmin = 0.5.
  // Sub-block 0: scale 2, min 4 (bytes 0 and 4). Sub-block 5: scale (b9 & 15) | (b1 >> 6) << 4 =
  // 1 + 16 = 17, min (b9 >> 4) | (b5 >> 6) << 4 = 3. Sub-block 1: b1 & 63 = 0, min b5 & 63 = 0.
  for (bool five : {false, true}) {
    std::vector<uint8_t> b(five ? 176 : 144, 0);
    put_half(b, 0, 0x3C00);
    put_half(b, 2, 0x3800);
    uint8_t* sc = b.data() + 4;
    sc[0] = 2;
    sc[4] = 4;
    sc[9] = 0x31;
    sc[1] = 0x40;
    uint8_t* qs = b.data() + (five ? 48 : 16);
    qs[0] = 0x07;   // element 0 (sub-block 0, low nibble)
    qs[64] = 0x50;  // element 160 (chunk 2, high nibble -> sub-block 5)
    if (five) {
      b[16 + 1] = 0x01;        // element 1: fifth bit (bit 0 of qh[1], chunk 0 low nibbles)
      b[16 + 0] = 1u << 5;     // element 160: chunk 2 high nibbles use bit 5 of qh[0]
    }
    auto y = deq(five ? ggml_type::q5_k : ggml_type::q4_k, b, 256);
    EXPECT_EQ(y[0], 2.0f * 7 - 2.0f) << five;
    EXPECT_EQ(y[1], (five ? 2.0f * 16 : 0.0f) - 2.0f) << five;
    EXPECT_EQ(y[32], 0.0f) << five;  // sub-block 1: scale 0, min 0
    EXPECT_EQ(y[160], 17.0f * (five ? 21 : 5) - 1.5f) << five;
    EXPECT_EQ(y[128], 0.0f) << five;  // sub-block 4: scale (b8 & 15) | (b0 >> 6) << 4 = 0
  }
}

TEST(gguf_dequant, q2_k_and_q3_k_blocks) {
  // Q2_K {scales[16]; qs[64]; half d; half dmin}: group g uses scales[g] (low: scale, high: min).
  std::vector<uint8_t> b2(84, 0);
  put_half(b2, 80, 0x3C00);  // d = 1
  put_half(b2, 82, 0x3400);  // dmin = 0.25
  b2[0] = 0x21;              // group 0: scale 1, min 2
  b2[2] = 0x12;              // group 2 (elements 32..47, shift 2): scale 2, min 1
  b2[16] = 0x0B;             // qs[0]: bits 0-1 = 3 (element 0), bits 2-3 = 2 (element 32)
  auto y2 = deq(ggml_type::q2_k, b2, 256);
  EXPECT_EQ(y2[0], 3.0f - 0.5f);
  EXPECT_EQ(y2[1], -0.5f);
  EXPECT_EQ(y2[32], 2.0f * 2 - 0.25f);
  EXPECT_EQ(y2[16], 0.0f);
  // Q3_K {hmask[32]; qs[64]; scales[12]; half d}: zero scale bytes -> every scale is 0 - 32.
  std::vector<uint8_t> b3(110, 0);
  put_half(b3, 108, 0x3C00);
  for (int j = 0; j < 32; ++j) b3[j] = 0xFF;  // high bit set everywhere: no -4
  b3[1] = 0xFE;                               // element 1: high bit clear -> q = 0 - 4
  b3[32] = 0x01;                              // element 0: q = 1
  auto y3 = deq(ggml_type::q3_k, b3, 256);
  EXPECT_EQ(y3[0], -32.0f);
  EXPECT_EQ(y3[1], 128.0f);
  EXPECT_EQ(y3[2], 0.0f);
}

TEST(gguf_dequant, matches_the_gguf_python_package) {
  std::ifstream in(std::string(TROUPE_TEST_DATA_DIR) + "/gguf_dequant_blocks.json");
  ASSERT_TRUE(in.good()) << "tests/data/gguf_dequant_blocks.json missing (tools/gguf_reference.py)";
  const auto j = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& t : j["types"]) {
    const std::string hex = t["hex"];
    std::vector<uint8_t> bytes(hex.size() / 2);
    for (size_t k = 0; k < bytes.size(); ++k) bytes[k] = static_cast<uint8_t>(std::stoi(hex.substr(2 * k, 2), nullptr, 16));
    const auto expect = t["values"].get<std::vector<float>>();
    const uint32_t id = t["id"];
    ASSERT_EQ(ggml_row_bytes(id, static_cast<int64_t>(expect.size())), static_cast<int64_t>(bytes.size())) << t["type"];
    std::vector<float> y(expect.size());
    ASSERT_TRUE(dequantize_to_f32(id, bytes.data(), static_cast<int64_t>(y.size()), y.data()).ok());
    for (size_t k = 0; k < y.size(); ++k)
      ASSERT_NEAR(y[k], expect[k], 1e-6 * std::max(1.0f, std::fabs(expect[k]))) << t["type"] << " element " << k;
    ++checked;
  }
  EXPECT_GE(checked, 12);
}

TEST(gguf_dequant, type_table_and_errors) {
  EXPECT_EQ(ggml_type_name(3), "Q4_1");
  EXPECT_EQ(ggml_type_name(99), "type 99");
  EXPECT_EQ(ggml_type_info(4), nullptr);  // removed Q4_2
  EXPECT_EQ(ggml_row_bytes(3, 64), 40);
  EXPECT_EQ(ggml_row_bytes(14, 512), 420);
  EXPECT_EQ(ggml_row_bytes(30, 3), 6);
  EXPECT_EQ(ggml_row_bytes(3, 33), -1);
  EXPECT_EQ(ggml_row_bytes(99, 32), -1);
  EXPECT_EQ(ggml_row_bytes(0, std::numeric_limits<int64_t>::max()), -1);
  std::vector<uint8_t> b(256);
  std::vector<float> y(256);
  auto unknown = dequantize_to_f32(99, b.data(), 32, y.data());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.err().code, errc::unsupported);
  auto iq = dequantize_to_f32(16, b.data(), 256, y.data());
  ASSERT_FALSE(iq.ok());
  EXPECT_EQ(iq.err().code, errc::unsupported);
  EXPECT_NE(iq.err().message.find("IQ2_XXS"), std::string::npos);
  auto partial = dequantize_to_f32(2, b.data(), 31, y.data());
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.err().code, errc::invalid_argument);
}

}  // namespace
}  // namespace troupe
