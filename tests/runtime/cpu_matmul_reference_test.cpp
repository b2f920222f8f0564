// The CPU matmul for every weight format the loader keeps (F32, BF16, F16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q4_K, Q5_K, Q6_K) against a dequantize-then-float reference: the weights widened by GGML's
// dequantizer (dequantize_to_f32, checked against the gguf package in dequant_test), multiplied in
// float64. Decode (m = 1) and batched/prefill (m > 1) shapes, the AVX2 and the scalar kernels, one
// and two threads; every row of an m-row product equals that row computed alone (batch invariance).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/cpu_matmul.h"
#include "runtime/dequant.h"
#include "runtime/weight_matrix.h"

namespace troupe {
namespace {

constexpr weight_dtype all_formats[] = {weight_dtype::f32,  weight_dtype::bf16, weight_dtype::f16,  weight_dtype::q4_0,
                                        weight_dtype::q4_1, weight_dtype::q5_0, weight_dtype::q5_1, weight_dtype::q8_0,
                                        weight_dtype::q4_k, weight_dtype::q5_k, weight_dtype::q6_k};

// Offsets of the fp16 scale fields in each block format's block: set to modest finite values (the
// other bytes stay random, so every quant pattern occurs).
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

// A random [n, k] matrix in format d, and its bytes as the GGUF file would hold them.
struct test_matrix {
  weight_matrix w;
  std::vector<uint8_t> file_bytes;
};

test_matrix random_matrix(weight_dtype d, int64_t n, int64_t k, std::mt19937& rng) {
  test_matrix t;
  if (!is_quantized(d)) {
    std::normal_distribution<float> g(0.f, 0.05f);
    std::vector<float> v(static_cast<size_t>(n * k));
    for (auto& x : v) x = g(rng);
    t.w = weight_matrix::from_f32(std::move(v), n, k, d);
    if (d == weight_dtype::f32) {
      t.file_bytes.resize(t.w.f32.size() * 4);
      std::memcpy(t.file_bytes.data(), t.w.f32.data(), t.file_bytes.size());
    } else {
      t.file_bytes.resize(t.w.half.size() * 2);
      std::memcpy(t.file_bytes.data(), t.w.half.data(), t.file_bytes.size());
    }
    return t;
  }
  const int64_t bs = weight_dtype_block(d), bb = weight_dtype_block_bytes(d);
  std::vector<uint8_t> bytes(static_cast<size_t>(n * k / bs * bb));
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  for (size_t blk = 0; blk < bytes.size() / bb; ++blk)
    for (int off : half_fields(d)) {
      const uint16_t h = f32_to_f16_bits(scale(rng));
      std::memcpy(bytes.data() + blk * bb + off, &h, 2);
    }
  t.file_bytes = bytes;
  auto m = weight_matrix::from_blocks(std::move(bytes), n, k, d);
  EXPECT_TRUE(m.ok()) << m.err().message;
  t.w = std::move(*m);
  return t;
}

struct scalar_scope {
  explicit scalar_scope(bool s) { set_cpu_matmul_scalar(s); }
  ~scalar_scope() { set_cpu_matmul_scalar(false); }
};

// Inner sizes per format: several blocks, and for the unblocked formats lengths with a k % 8 tail.
std::vector<int64_t> inner_sizes(weight_dtype d) {
  const int64_t bs = weight_dtype_block(d);
  if (bs == 1) return {8, 37, 133, 576};
  return {bs, 3 * bs};
}

TEST(cpu_matmul_reference, every_format_matches_dequantize_then_float64) {
  std::mt19937 rng(2026);
  for (weight_dtype d : all_formats) {
    for (int64_t k : inner_sizes(d)) {
      for (int64_t n : {1, 7, 50}) {
        const test_matrix t = random_matrix(d, n, k, rng);
        std::vector<float> deq(static_cast<size_t>(n * k));
        ASSERT_TRUE(dequantize_to_f32(weight_dtype_ggml_type(d), t.file_bytes.data(), n * k, deq.data()).ok());
        for (int64_t m : {1, 2, 5, 33}) {
          std::uniform_real_distribution<float> u(-1.f, 1.f);
          std::vector<float> x(static_cast<size_t>(m * k)), bias(static_cast<size_t>(n));
          for (auto& v : x) v = u(rng);
          for (auto& v : bias) v = u(rng);
          // Float32 with 8 lanes of k/8 FMAs, a lane tree and a tail: each output is within a few
          // (k/8 + 4) roundings of the exact sum, relative to Σ|x·w|. A kernel that rounded the
          // activations (to 16 or 8 bits) would be off by orders of magnitude more.
          const double rel = 4.0 * static_cast<double>(k / 8 + 4) * std::ldexp(1.0, -24);
          for (bool scalar : {false, true}) {
            scalar_scope sc(scalar);
            for (int threads : {1, 2}) {
              cpu_thread_pool pool(threads);
              std::vector<float> y(static_cast<size_t>(m * n)), y1(static_cast<size_t>(n));
              matmul_nt(x.data(), m, t.w, bias.data(), y.data(), pool);
              for (int64_t i = 0; i < m; ++i) {
                for (int64_t j = 0; j < n; ++j) {
                  double exact = bias[j], mag = std::fabs(bias[j]);
                  for (int64_t c = 0; c < k; ++c) {
                    const double p = static_cast<double>(x[i * k + c]) * deq[j * k + c];
                    exact += p;
                    mag += std::fabs(p);
                  }
                  ASSERT_NEAR(y[i * n + j], exact, rel * mag + 1e-30)
                      << weight_dtype_name(d) << " k=" << k << " n=" << n << " m=" << m << " row " << i << " col " << j
                      << " scalar=" << scalar << " threads=" << threads;
                }
                // Batch invariance: row i alone (decode, m = 1) gives the bits it gave among m rows.
                matmul_nt(x.data() + i * k, 1, t.w, bias.data(), y1.data(), pool);
                ASSERT_EQ(0, std::memcmp(y1.data(), y.data() + i * n, y1.size() * 4))
                    << weight_dtype_name(d) << " k=" << k << " n=" << n << " m=" << m << " row " << i
                    << " scalar=" << scalar << " threads=" << threads;
              }
            }
          }
        }
      }
    }
  }
}

// Every format round-trips through GGML's type id, and weight_matrix widens each stored row to the
// values GGML's dequantizer gives (the embedding gathers rows this way).
TEST(cpu_matmul_reference, row_widening_equals_the_ggml_dequantizer) {
  std::mt19937 rng(5);
  for (weight_dtype d : all_formats) {
    ASSERT_EQ(weight_dtype_from_ggml(weight_dtype_ggml_type(d)), d) << weight_dtype_name(d);
    const int64_t k = inner_sizes(d).back(), n = 3;
    const test_matrix t = random_matrix(d, n, k, rng);
    std::vector<float> deq(static_cast<size_t>(n * k)), row(static_cast<size_t>(k));
    ASSERT_TRUE(dequantize_to_f32(weight_dtype_ggml_type(d), t.file_bytes.data(), n * k, deq.data()).ok());
    for (int64_t r = 0; r < n; ++r) {
      t.w.row_f32(r, row.data());
      ASSERT_EQ(0, std::memcmp(row.data(), deq.data() + r * k, static_cast<size_t>(k) * 4))
          << weight_dtype_name(d) << " row " << r;
    }
  }
}

}  // namespace
}  // namespace troupe
