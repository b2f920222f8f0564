// SiLU-and-mul, GeGLU, soft-capping, row gather (embedding, scaled) and random fill vs CPU references.
#include <cmath>

#include "gpu_test_util.h"
#include "kernels/activation.h"
#include "kernels/embedding.h"

namespace troupe {
namespace {

using namespace test;

TEST(silu_and_mul, matches_cpu_reference) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(3);
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int64_t tokens : {1, 19, 99})
      for (int64_t inter : {111, 352, 1024}) {
        const auto gu = random_values(tokens * 2 * inter, dt, rng, -6.f, 6.f);
        dev_buf<uint16_t> din(to_bits(gu, dt)), dout(tokens * inter);
        ASSERT_EQ(launch_silu_and_mul({dout.get(), din.get(), tokens, inter, dt}, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const auto got = from_bits(dout.download(), dt);
        int bad = 0;
        for (int64_t t = 0; t < tokens && bad < 5; ++t)
          for (int64_t i = 0; i < inter && bad < 5; ++i) {
            const float g = gu[t * 2 * inter + i], u = gu[t * 2 * inter + inter + i];
            const float want = round_to_device(dt, g / (1.f + std::exp(-g))) * u;
            if (std::fabs(got[t * inter + i] - want) > 1.6e-2f * std::fabs(want) + 1e-3f) {
              ADD_FAILURE() << dt_name(dt) << " t " << t << " i " << i << ": " << got[t * inter + i] << " vs " << want;
              ++bad;
            }
          }
      }
}

// Gemma's GeGLU: dtype(gelu_tanh(gate)) * up, PyTorch's tanh approximation in float32.
TEST(silu_and_mul, gelu_tanh_variant_matches_cpu_reference) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(13);
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int64_t tokens : {1, 19, 99})
      for (int64_t inter : {111, 352, 2048}) {
        const auto gu = random_values(tokens * 2 * inter, dt, rng, -6.f, 6.f);
        dev_buf<uint16_t> din(to_bits(gu, dt)), dout(tokens * inter);
        silu_and_mul_args a{dout.get(), din.get(), tokens, inter, dt};
        a.gelu_tanh = true;
        ASSERT_EQ(launch_silu_and_mul(a, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const auto got = from_bits(dout.download(), dt);
        int bad = 0;
        for (int64_t t = 0; t < tokens && bad < 5; ++t)
          for (int64_t i = 0; i < inter && bad < 5; ++i) {
            const double g = gu[t * 2 * inter + i], u = gu[t * 2 * inter + inter + i];
            const double gelu = 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
            const float want = round_to_device(dt, static_cast<float>(gelu)) * static_cast<float>(u);
            if (std::fabs(got[t * inter + i] - want) > 1.6e-2f * std::fabs(want) + 1e-3f) {
              ADD_FAILURE() << dt_name(dt) << " t " << t << " i " << i << ": " << got[t * inter + i] << " vs " << want;
              ++bad;
            }
          }
      }
}

TEST(softcap, bounds_logits_by_cap_tanh) {
  TROUPE_REQUIRE_GPU();
  std::vector<float> x(100003);
  std::mt19937 rng(14);
  std::uniform_real_distribution<float> u(-200.f, 200.f);
  for (auto& v : x) v = u(rng);
  dev_buf<float> d(x);
  ASSERT_EQ(launch_softcap(d.get(), static_cast<int64_t>(x.size()), 30.f, nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto got = d.download();
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_NEAR(got[i], 30.0 * std::tanh(x[i] / 30.0), 1e-4) << "x = " << x[i];
  EXPECT_EQ(launch_softcap(d.get(), 10, 0.f, nullptr), cudaErrorInvalidValue);
}

TEST(gather_rows, scale_multiplies_rows_by_the_dtype_rounded_scale) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(15);
  const float scale = std::sqrt(640.f);  // Gemma 3 270M's √hidden
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int64_t width : {111, 640}) {
      const int64_t vocab = 97, rows = 19;
      const auto table = random_values(vocab * width, dt, rng);
      std::vector<int32_t> ids(rows);
      for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
      dev_buf<uint16_t> dtab(to_bits(table, dt)), dout(rows * width);
      dev_buf<int32_t> did(ids);
      gather_rows_args a{dout.get(), dtab.get(), did.get(), rows, vocab, width, dt};
      a.scale = scale;
      ASSERT_EQ(launch_gather_rows(a, nullptr), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const auto got = from_bits(dout.download(), dt);
      const float s = round_to_device(dt, scale);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < width; ++i)
          ASSERT_EQ(got[r * width + i], round_to_device(dt, table[ids[r] * width + i] * s))
              << dt_name(dt) << " row " << r << " col " << i;
    }
}

TEST(gather_rows, copies_rows_and_zeroes_invalid_ids) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(4);
  for (int64_t width : {111, 128})
    for (int64_t rows : {1, 19, 99}) {
      const int64_t vocab = 513;
      const auto table = random_values(vocab * width, kernel_dtype::bf16, rng);
      std::vector<int32_t> ids(rows);
      for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
      ids[0] = rows > 1 ? -1 : ids[0];
      if (rows > 2) ids[1] = static_cast<int32_t>(vocab);
      dev_buf<uint16_t> dt(to_bits(table, kernel_dtype::bf16)), dout(rows * width);
      dev_buf<int32_t> did(ids);
      ASSERT_EQ(launch_gather_rows({dout.get(), dt.get(), did.get(), rows, vocab, width, kernel_dtype::bf16}, nullptr),
                cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const auto got = from_bits(dout.download(), kernel_dtype::bf16);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < width; ++i) {
          const bool valid = ids[r] >= 0 && ids[r] < vocab;
          ASSERT_EQ(got[r * width + i], valid ? table[ids[r] * width + i] : 0.f) << "row " << r << " col " << i;
        }
    }
}

TEST(random_fill, is_deterministic_and_in_range) {
  TROUPE_REQUIRE_GPU();
  const int64_t n = 100003;
  dev_buf<uint16_t> a(n), b(n);
  ASSERT_EQ(launch_random_fill({a.get(), n, 0.5f, 1.f, 42, kernel_dtype::bf16}, nullptr), cudaSuccess);
  ASSERT_EQ(launch_random_fill({b.get(), n, 0.5f, 1.f, 42, kernel_dtype::bf16}, nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto va = from_bits(a.download(), kernel_dtype::bf16);
  EXPECT_EQ(va, from_bits(b.download(), kernel_dtype::bf16));
  double mean = 0;
  for (float v : va) {
    ASSERT_GE(v, 0.5f);
    ASSERT_LE(v, 1.5f);
    mean += v;
  }
  EXPECT_NEAR(mean / n, 1.0, 0.01);
}

}  // namespace
}  // namespace troupe
