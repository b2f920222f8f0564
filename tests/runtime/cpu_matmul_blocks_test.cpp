// The CPU matmul over weights held in GGML block formats: for every format, odd shapes and both
// the AVX2 and the scalar kernels, the result equals (bit for bit) the float32 kernel's over the
// same weights dequantized by GGML's dequantizer, and a row's result does not depend on m.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "runtime/cpu_matmul.h"
#include "runtime/dequant.h"
#include "runtime/weight_matrix.h"

namespace troupe {
namespace {

// Offsets of the fp16 scale fields in each format's block (set to finite, modest values; the
// other bytes stay random).
std::vector<int> half_fields(weight_dtype d) {
  switch (d) {
    case weight_dtype::q4_0:
    case weight_dtype::q5_0:
    case weight_dtype::q8_0: return {0};
    case weight_dtype::q4_1:
    case weight_dtype::q5_1:
    case weight_dtype::q4_k:
    case weight_dtype::q5_k: return {0, 2};
    case weight_dtype::q6_k: return {208};
    default: return {};
  }
}

weight_matrix random_blocks(weight_dtype d, int64_t rows, int64_t cols, std::mt19937& rng) {
  const int64_t bs = weight_dtype_block(d), bb = weight_dtype_block_bytes(d);
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * cols / bs * bb));
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  for (size_t blk = 0; blk < bytes.size() / bb; ++blk)
    for (int off : half_fields(d)) {
      const uint16_t h = f32_to_f16_bits(scale(rng));
      std::memcpy(bytes.data() + blk * bb + off, &h, 2);
    }
  auto m = weight_matrix::from_blocks(std::move(bytes), rows, cols, d);
  EXPECT_TRUE(m.ok());
  return std::move(*m);
}

weight_matrix widened(const weight_matrix& q) {
  std::vector<float> v(static_cast<size_t>(q.rows * q.cols));
  for (int64_t r = 0; r < q.rows; ++r) q.row_f32(r, v.data() + r * q.cols);
  return weight_matrix::from_f32(std::move(v), q.rows, q.cols, weight_dtype::f32);
}

struct scalar_scope {
  explicit scalar_scope(bool s) { set_cpu_matmul_scalar(s); }
  ~scalar_scope() { set_cpu_matmul_scalar(false); }
};

constexpr weight_dtype formats[] = {weight_dtype::q4_0, weight_dtype::q4_1, weight_dtype::q5_0, weight_dtype::q5_1,
                                    weight_dtype::q8_0, weight_dtype::q4_k, weight_dtype::q5_k, weight_dtype::q6_k};

TEST(cpu_matmul_blocks, equals_float32_kernel_over_dequantized_weights) {
  std::mt19937 rng(7);
  for (bool scalar : {false, true}) {
    scalar_scope sc(scalar);
    for (int threads : {1, 2}) {
      cpu_thread_pool pool(threads);
      for (weight_dtype d : formats) {
        const int64_t bs = weight_dtype_block(d);
        for (int64_t n : {1, 7, 50}) {
          const int64_t k = bs * (bs == 32 ? 3 : 2);
          const weight_matrix q = random_blocks(d, n, k, rng);
          const weight_matrix f = widened(q);
          for (int64_t m : {1, 3, 5, 70}) {
            std::vector<float> x(static_cast<size_t>(m * k)), bias(static_cast<size_t>(n));
            std::uniform_real_distribution<float> u(-1.f, 1.f);
            for (auto& v : x) v = u(rng);
            for (auto& v : bias) v = u(rng);
            std::vector<float> yq(static_cast<size_t>(m * n)), yf(yq.size()), y1(static_cast<size_t>(n));
            matmul_nt(x.data(), m, q, bias.data(), yq.data(), pool);
            matmul_nt(x.data(), m, f, bias.data(), yf.data(), pool);
            ASSERT_EQ(0, std::memcmp(yq.data(), yf.data(), yq.size() * 4))
                << weight_dtype_name(d) << " n=" << n << " m=" << m << " scalar=" << scalar << " threads=" << threads;
            // Batch invariance: the last row alone gives the bits it gave among m rows.
            matmul_nt(x.data() + (m - 1) * k, 1, q, bias.data(), y1.data(), pool);
            ASSERT_EQ(0, std::memcmp(y1.data(), yq.data() + (m - 1) * n, y1.size() * 4)) << weight_dtype_name(d);
          }
        }
      }
    }
  }
}

TEST(cpu_matmul_blocks, avx2_and_scalar_decoders_agree_on_every_weight) {
  // Every weight through a one-hot x picks out one dequantized value: both paths must give GGML's.
  std::mt19937 rng(11);
  cpu_thread_pool pool(1);
  for (weight_dtype d : formats) {
    const int64_t k = weight_dtype_block(d), n = 3;
    const weight_matrix q = random_blocks(d, n, k, rng);
    std::vector<float> ref(static_cast<size_t>(n * k));
    ASSERT_TRUE(dequantize_to_f32(weight_dtype_ggml_type(d), q.quant.data(), n * k, ref.data()).ok());
    for (bool scalar : {false, true}) {
      scalar_scope sc(scalar);
      std::vector<float> x(static_cast<size_t>(k * k), 0.f), y(static_cast<size_t>(k * n));
      for (int64_t i = 0; i < k; ++i) x[i * k + i] = 1.f;
      matmul_nt(x.data(), k, q, nullptr, y.data(), pool);
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < n; ++j)
          ASSERT_EQ(y[i * n + j], ref[j * k + i]) << weight_dtype_name(d) << " scalar=" << scalar << " i=" << i;
    }
  }
}

TEST(cpu_matmul_blocks, from_blocks_rejects_a_wrong_byte_count) {
  EXPECT_FALSE(weight_matrix::from_blocks(std::vector<uint8_t>(19), 1, 32, weight_dtype::q4_1).ok());
  EXPECT_FALSE(weight_matrix::from_blocks(std::vector<uint8_t>(20), 1, 33, weight_dtype::q4_1).ok());
  EXPECT_TRUE(weight_matrix::from_blocks(std::vector<uint8_t>(40), 2, 32, weight_dtype::q4_1).ok());
}

}  // namespace
}  // namespace troupe
