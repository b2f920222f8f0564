// The AVX2+FMA (and AVX-512) non-matmul kernels (cpu_simd.h) against the scalar ones (cpu_kernels.h with
// set_cpu_matmul_scalar(true)): vector exp/tanh against std::exp/std::tanh over the float range and
// the special values, RMSNorm and rotary bit-identical, SiLU/GeGLU/softcap/softmax within a few ulp,
// over sizes with tails that are not a multiple of 8, and each element's result independent of the
// length of the array it sits in (batch invariance of the elementwise ops).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "runtime/cpu_kernels.h"
#include "runtime/cpu_simd.h"

namespace troupe {
namespace {

struct scalar_scope {
  explicit scalar_scope(bool s) { set_cpu_matmul_scalar(s); }
  ~scalar_scope() { set_cpu_matmul_scalar(false); }
};

bool have_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

// Distance in representable floats between two finite values of the same sign, or inf and FLT_MAX.
int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = std::numeric_limits<int32_t>::min() - ia;  // map to one monotonic integer line
  if (ib < 0) ib = std::numeric_limits<int32_t>::min() - ib;
  return std::llabs(static_cast<int64_t>(ia) - ib);
}

// Random floats in [-range, range], n of them.
std::vector<float> random_vector(std::mt19937& rng, int64_t n, float range) {
  std::uniform_real_distribution<float> u(-range, range);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = u(rng);
  return v;
}

const std::vector<int64_t> kSizes = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 576, 1537};

TEST(cpu_kernels_simd, exp_is_within_one_ulp_of_the_correctly_rounded_exp) {
  if (!have_avx2()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  std::vector<float> x;
  for (float v = -110.0f; v <= 95.0f; v += 0.00731f) x.push_back(v);  // subnormal results, 0, overflow
  for (float v = -1.0f; v <= 1.0f; v += 1.0f / 4096) x.push_back(v);  // near 1, where most softmax values land
  for (float v : {0.0f, -0.0f, 88.72f, 88.7228f, 88.723f, -87.33f, -103.97f, -103.28f, 1e-30f, -1e-30f}) x.push_back(v);
  std::vector<float> y(x.size());
  simd_avx2::exp(x.data(), y.data(), static_cast<int64_t>(x.size()));
  int64_t worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = static_cast<float>(std::exp(static_cast<double>(x[i])));
    const int64_t d = ulp_distance(y[i], want);
    worst = std::max(worst, d);
    ASSERT_LE(d, 1) << "exp(" << x[i] << ") = " << y[i] << ", want " << want;
  }
  std::printf("exp: worst %lld ulp over %zu inputs\n", static_cast<long long>(worst), x.size());
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  float special[8] = {inf, -inf, nan, 200.0f, -200.0f, 88.73f, -104.5f, -nan}, out[8];
  simd_avx2::exp(special, out, 8);
  EXPECT_EQ(out[0], inf);
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_EQ(out[3], inf);
  EXPECT_EQ(out[4], 0.0f);
  EXPECT_EQ(out[5], inf);
  EXPECT_EQ(out[6], 0.0f);
  EXPECT_TRUE(std::isnan(out[7]));
}

TEST(cpu_kernels_simd, tanh_is_within_a_few_ulp_of_std_tanh) {
  if (!have_avx2()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  std::vector<float> x;
  for (float v = -12.0f; v <= 12.0f; v += 0.000913f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-6f, 0.6249f, 0.625f, -0.625f, 0.6251f, 9.0f, 50.0f}) x.push_back(v);
  std::vector<float> y(x.size());
  simd_avx2::tanh(x.data(), y.data(), static_cast<int64_t>(x.size()));
  int64_t worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = static_cast<float>(std::tanh(static_cast<double>(x[i])));
    const int64_t d = ulp_distance(y[i], want);
    worst = std::max(worst, d);
    ASSERT_LE(d, 3) << "tanh(" << x[i] << ") = " << y[i] << ", want " << want;
  }
  std::printf("tanh: worst %lld ulp over %zu inputs\n", static_cast<long long>(worst), x.size());
  const float inf = std::numeric_limits<float>::infinity();
  float special[4] = {inf, -inf, std::numeric_limits<float>::quiet_NaN(), -0.0f}, out[4];
  simd_avx2::tanh(special, out, 4);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -1.0f);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_TRUE(std::signbit(out[3]));
}

TEST(cpu_kernels_simd, rmsnorm_and_rope_are_bit_identical_on_both_paths) {
  std::mt19937 rng(11);
  for (int64_t dim : kSizes) {
    const int64_t rows = 3;
    const std::vector<float> x = random_vector(rng, rows * dim, 4.0f), w = random_vector(rng, dim, 2.0f);
    std::vector<float> y_vec(x.size()), y_scalar(x.size());
    rmsnorm(x.data(), w.data(), rows, dim, 1e-6, y_vec.data());
    {
      scalar_scope sc(true);
      rmsnorm(x.data(), w.data(), rows, dim, 1e-6, y_scalar.data());
    }
    ASSERT_EQ(0, std::memcmp(y_vec.data(), y_scalar.data(), y_vec.size() * 4)) << "rmsnorm dim=" << dim;
    std::vector<float> in_place = x;  // the forward pass normalises q/k heads in place
    rmsnorm(in_place.data(), w.data(), rows, dim, 1e-6, in_place.data());
    ASSERT_EQ(0, std::memcmp(in_place.data(), y_vec.data(), y_vec.size() * 4)) << "in place, dim=" << dim;

    const int64_t hd = 2 * dim, heads = 3;
    const std::vector<float> v = random_vector(rng, heads * hd, 3.0f), cs = random_vector(rng, dim, 1.0f),
                             sn = random_vector(rng, dim, 1.0f);
    std::vector<float> r_vec = v, r_scalar = v;
    rope_apply(r_vec.data(), heads, hd, cs.data(), sn.data());
    {
      scalar_scope sc(true);
      rope_apply(r_scalar.data(), heads, hd, cs.data(), sn.data());
    }
    ASSERT_EQ(0, std::memcmp(r_vec.data(), r_scalar.data(), r_vec.size() * 4)) << "rope head_dim=" << hd;
  }
}

// |a − b| ≤ rel · |b| + abs, element by element.
void expect_close(const std::vector<float>& a, const std::vector<float>& b, float rel, float abs, const char* what,
                  int64_t n) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_LE(std::fabs(a[i] - b[i]), rel * std::fabs(b[i]) + abs) << what << " n=" << n << " i=" << i;
}

TEST(cpu_kernels_simd, silu_gelu_and_softcap_match_the_scalar_kernels) {
  std::mt19937 rng(12);
  for (int64_t inter : kSizes) {
    const int64_t rows = 2;
    std::vector<float> gu = random_vector(rng, rows * 2 * inter, 12.0f);
    gu[0] = -95.0f;  // e^{-g} overflows: silu → -0
    std::vector<float> v(rows * inter), s(rows * inter);
    silu_mul(gu.data(), rows, inter, v.data());
    {
      scalar_scope sc(true);
      silu_mul(gu.data(), rows, inter, s.data());
    }
    expect_close(v, s, 4e-7f, 1e-30f, "silu_mul", inter);
    gelu_tanh_mul(gu.data(), rows, inter, v.data());
    {
      scalar_scope sc(true);
      gelu_tanh_mul(gu.data(), rows, inter, s.data());
    }
    // 1 + tanh(u) cancels for u ≪ 0 in either path: bound that by an absolute term of |x · u| · ulp(1).
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < inter; ++i) {
        const float x = gu[r * 2 * inter + i], u = gu[r * 2 * inter + inter + i], a = v[r * inter + i], b = s[r * inter + i];
        ASSERT_LE(std::fabs(a - b), 1e-6f * std::fabs(b) + 2.4e-7f * std::fabs(x * u)) << "gelu inter=" << inter;
      }
    std::vector<float> c_vec = random_vector(rng, inter, 200.0f), c_scalar = c_vec;
    softcap(c_vec.data(), inter, 30.0f);
    {
      scalar_scope sc(true);
      softcap(c_scalar.data(), inter, 30.0f);
    }
    expect_close(c_vec, c_scalar, 5e-7f, 0.0f, "softcap", inter);
  }
}

TEST(cpu_kernels_simd, softmax_numerators_match_the_scalar_kernel) {
  std::mt19937 rng(13);
  for (int64_t n : kSizes) {
    std::vector<float> v = random_vector(rng, n, 20.0f), s = v;
    const float sum_v = softmax_numerators(v.data(), n);
    float sum_s;
    {
      scalar_scope sc(true);
      sum_s = softmax_numerators(s.data(), n);
    }
    expect_close(v, s, 3e-7f, 0.0f, "softmax numerators", n);
    // The scalar sum runs in position order (error up to ~n ulp), the vector one in 8 lanes: each
    // within its own bound of the exact sum of its numerators.
    double exact_v = 0, exact_s = 0;
    for (int64_t j = 0; j < n; ++j) exact_v += v[j], exact_s += s[j];
    ASSERT_NEAR(sum_v, exact_v, (static_cast<double>(n) / 8 + 3) * 6e-8 * exact_v) << "n=" << n;
    ASSERT_NEAR(sum_s, exact_s, static_cast<double>(n) * 6e-8 * exact_s) << "n=" << n;
    float mx = 0;
    for (float e : v) mx = std::max(mx, e);
    ASSERT_EQ(mx, 1.0f) << "the maximum's numerator is exp(0)";
  }
}

// The AVX-512 kernels give the AVX2 kernels' bits (same per-element arithmetic, same lane sums).
TEST(cpu_kernels_simd, avx512_silu_and_softmax_equal_the_avx2_kernels_bit_for_bit) {
  if (!have_avx2() || !__builtin_cpu_supports("avx512f")) GTEST_SKIP() << "no AVX-512F on this CPU";
  ASSERT_TRUE(simd_avx512::usable());
  std::mt19937 rng(15);
  for (int64_t n : kSizes) {
    for (int64_t extra : {0, 8, 24}) {  // lengths whose tails start past a 16- but not an 8-chunk
      const int64_t len = n + extra;
      const std::vector<float> gu = random_vector(rng, 2 * 2 * len, 12.0f);
      std::vector<float> a(2 * len), b(2 * len);
      simd_avx512::silu_mul(gu.data(), 2, len, a.data());
      simd_avx2::silu_mul(gu.data(), 2, len, b.data());
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << "silu_mul len=" << len;
      std::vector<float> s512 = random_vector(rng, len, 20.0f), s256 = s512;
      const float sum512 = simd_avx512::softmax_numerators(s512.data(), len);
      const float sum256 = simd_avx2::softmax_numerators(s256.data(), len);
      ASSERT_EQ(0, std::memcmp(s512.data(), s256.data(), s512.size() * 4)) << "softmax len=" << len;
      ASSERT_EQ(sum512, sum256) << "softmax sum len=" << len;
    }
  }
  set_cpu_matmul_scalar(true);  // the scalar switch turns the AVX-512 kernels off too
  EXPECT_FALSE(simd_avx512::usable());
  set_cpu_matmul_scalar(false);
}

// An element's result never depends on the array's length or its position in it: the tails go
// through the same vector code as the body (softcap runs over [rows, vocab] at once).
TEST(cpu_kernels_simd, elementwise_results_do_not_depend_on_the_array_length) {
  std::mt19937 rng(14);
  const std::vector<float> x = random_vector(rng, 37, 40.0f);
  std::vector<float> whole = x;
  softcap(whole.data(), 37, 30.0f);
  for (int64_t start : {0, 1, 5, 29, 36}) {
    for (int64_t len = 1; start + len <= 37; len += 3) {
      std::vector<float> part(x.begin() + start, x.begin() + start + len);
      softcap(part.data(), len, 30.0f);
      ASSERT_EQ(0, std::memcmp(part.data(), whole.data() + start, static_cast<size_t>(len) * 4))
          << "start=" << start << " len=" << len;
    }
  }
  // silu_mul: one row of 13 against the same values as the first 13 of a row of 40.
  std::vector<float> gu40 = random_vector(rng, 80, 8.0f), gu13(26), o40(40), o13(13);
  std::copy(gu40.begin(), gu40.begin() + 13, gu13.begin());
  std::copy(gu40.begin() + 40, gu40.begin() + 53, gu13.begin() + 13);
  silu_mul(gu40.data(), 1, 40, o40.data());
  silu_mul(gu13.data(), 1, 13, o13.data());
  ASSERT_EQ(0, std::memcmp(o13.data(), o40.data(), 13 * 4));
}

}  // namespace
}  // namespace troupe
