// CPU kernels besides the matmul: the float16 conversion of KV rows, and paged attention over a
// float16 cache (run per block) giving the bits of the per-position dot_f16 / axpy_f16 definition.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "runtime/cpu_kernels.h"

namespace troupe {
namespace {

struct scalar_scope {
  explicit scalar_scope(bool s) { set_cpu_matmul_scalar(s); }
  ~scalar_scope() { set_cpu_matmul_scalar(false); }
};

TEST(cpu_kernels, f32_to_f16_row_rounds_like_f32_to_f16_bits) {
  std::mt19937 rng(3);
  std::vector<float> x;
  for (int e = -30; e <= 20; ++e)  // float16 subnormals, normals and overflow, both signs
    for (int i = 0; i < 40; ++i) x.push_back(std::ldexp(std::uniform_real_distribution<float>(-2.f, 2.f)(rng), e));
  for (float v : {0.f, -0.f, 65504.f, 65520.f, 1e-8f, std::numeric_limits<float>::infinity()}) x.push_back(v);
  x.push_back(1.f);  // an odd length: the tail goes through the scalar conversion
  for (bool scalar : {false, true}) {
    scalar_scope sc(scalar);
    std::vector<uint16_t> y(x.size());
    f32_to_f16_row(x.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], f32_to_f16_bits(x[i])) << "x=" << x[i] << " scalar=" << scalar;
  }
}

// The definition: scores by dot_f16 per position, softmax_numerators, then axpy_f16 per position in
// order.
std::vector<float> attention_by_position(const float* q, const paged_kv_view& kv, int64_t lo, int64_t hi, float scale) {
  const int64_t hd = kv.head_dim;
  auto slot = [&](int64_t pos) {
    return static_cast<int64_t>(kv.block_table[pos / kv.block_seq_len]) * kv.block_stride +
           (pos % kv.block_seq_len) * hd;
  };
  std::vector<float> s;
  for (int64_t j = lo; j <= hi; ++j) s.push_back(dot_f16(q, kv.pool_f16 + slot(j) + kv.k_offset, hd) * scale);
  const float sum = softmax_numerators(s.data(), static_cast<int64_t>(s.size()));
  std::vector<float> out(static_cast<size_t>(hd), 0.f);
  for (int64_t j = lo; j <= hi; ++j) axpy_f16(s[j - lo], kv.pool_f16 + slot(j) + kv.v_offset, out.data(), hd);
  for (float& v : out) v *= 1.0f / sum;
  return out;
}

TEST(cpu_kernels, f16_paged_attention_per_block_equals_the_per_position_definition) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t hd : {24, 64}) {
    for (int64_t bsl : {1, 5, 16}) {
      const int64_t num_blocks = 40 / bsl + 2;
      paged_kv_view kv;
      kv.block_seq_len = bsl;
      kv.head_dim = hd;
      kv.block_stride = 2 * bsl * hd;  // one layer, one kv head: K then V
      kv.k_offset = 0;
      kv.v_offset = bsl * hd;
      std::vector<uint16_t> pool(static_cast<size_t>(num_blocks * kv.block_stride));
      for (auto& h : pool) h = f32_to_f16_bits(u(rng));
      std::vector<int32_t> table;
      for (int64_t b = num_blocks - 1; b >= 0; --b) table.push_back(static_cast<int32_t>(b));  // not in order
      kv.pool_f16 = pool.data();
      kv.block_table = table.data();
      std::vector<float> q(static_cast<size_t>(hd)), scores(64), out(static_cast<size_t>(hd));
      for (auto& v : q) v = u(rng);
      for (auto [lo, hi] : {std::pair<int64_t, int64_t>{0, 0}, {0, 37}, {3, 29}, {7, 8}}) {
        paged_attention_row(q.data(), kv, lo, hi, 0.125f, scores.data(), out.data());
        const std::vector<float> want = attention_by_position(q.data(), kv, lo, hi, 0.125f);
        ASSERT_EQ(0, std::memcmp(out.data(), want.data(), out.size() * 4))
            << "hd=" << hd << " block_seq_len=" << bsl << " lo=" << lo << " hi=" << hi;
      }
    }
  }
}

}  // namespace
}  // namespace troupe
