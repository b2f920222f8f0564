// The CPU matmul over float16 weights: for odd shapes (k with a tail, n not a multiple of any
// tile), m on both sides of the decode/panel switch, 1 and 2 threads, the AVX2 and the scalar
// kernels: equal bit for bit to the float32 kernel over the weights widened exactly, a row's
// result independent of m, and close to a float64 dequantize-then-multiply reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/cpu_matmul.h"
#include "runtime/weight_matrix.h"

namespace troupe {
namespace {

struct scalar_scope {
  explicit scalar_scope(bool s) { set_cpu_matmul_scalar(s); }
  ~scalar_scope() { set_cpu_matmul_scalar(false); }
};

weight_matrix random_f16(int64_t rows, int64_t cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  weight_matrix w;
  w.dtype = weight_dtype::f16;
  w.rows = rows;
  w.cols = cols;
  w.half.resize(static_cast<size_t>(rows * cols));
  for (auto& h : w.half) h = f32_to_f16_bits(u(rng));
  return w;
}

weight_matrix widened(const weight_matrix& h) {
  std::vector<float> v(h.half.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = f16_bits_to_f32(h.half[i]);
  return weight_matrix::from_f32(std::move(v), h.rows, h.cols, weight_dtype::f32);
}

TEST(cpu_matmul_f16, equals_float32_kernel_over_widened_weights_for_any_m) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (bool scalar : {false, true}) {
    scalar_scope sc(scalar);
    for (int threads : {1, 2}) {
      cpu_thread_pool pool(threads);
      for (int64_t k : {8, 45, 64, 100, 576}) {
        for (int64_t n : {1, 5, 7, 50, 131}) {
          const weight_matrix h = random_f16(n, k, rng);
          const weight_matrix f = widened(h);
          for (int64_t m : {1, 2, 3, 4, 5, 8, 70, 300}) {
            std::vector<float> x(static_cast<size_t>(m * k)), bias(static_cast<size_t>(n));
            for (auto& v : x) v = u(rng);
            for (auto& v : bias) v = u(rng);
            std::vector<float> yh(static_cast<size_t>(m * n)), yf(yh.size()), y1(static_cast<size_t>(n));
            matmul_nt(x.data(), m, h, bias.data(), yh.data(), pool);
            matmul_nt(x.data(), m, f, bias.data(), yf.data(), pool);
            ASSERT_EQ(0, std::memcmp(yh.data(), yf.data(), yh.size() * 4))
                << "k=" << k << " n=" << n << " m=" << m << " scalar=" << scalar << " threads=" << threads;
            // Batch invariance: every row alone gives the bits it gave among m rows.
            for (int64_t i = 0; i < m; ++i) {
              matmul_nt(x.data() + i * k, 1, h, bias.data(), y1.data(), pool);
              ASSERT_EQ(0, std::memcmp(y1.data(), yh.data() + i * n, y1.size() * 4)) << "m=" << m << " row " << i;
            }
            // Accuracy against float64 over the dequantized weights.
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < n; ++j) {
                double ref = bias[j], mag = std::fabs(bias[j]);
                for (int64_t t = 0; t < k; ++t) {
                  const double p = static_cast<double>(x[i * k + t]) * f16_bits_to_f32(h.half[j * k + t]);
                  ref += p;
                  mag += std::fabs(p);
                }
                ASSERT_NEAR(yh[i * n + j], ref, 1e-6 * mag + 1e-7) << "i=" << i << " j=" << j;
              }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace troupe
