// RMSNorm kernels vs a CPU reference over odd shapes, bf16 and fp16.
#include <cmath>

#include "gpu_test_util.h"
#include "kernels/norm.h"

namespace troupe {
namespace {

using namespace test;

std::vector<float> ref_norm(const std::vector<float>& x, const std::vector<float>& w, int64_t rows, int64_t hidden,
                            float eps, kernel_dtype dt) {
  std::vector<float> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < hidden; ++i) ss += double(x[r * hidden + i]) * x[r * hidden + i];
    const float inv = 1.f / std::sqrt(float(ss / hidden) + eps);
    for (int64_t i = 0; i < hidden; ++i)
      out[r * hidden + i] = w[i] * round_to_device(dt, x[r * hidden + i] * inv);
  }
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, float rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i)
    if (!(std::fabs(got[i] - want[i]) <= rel * std::fabs(want[i]) + 1e-3f)) {
      ADD_FAILURE() << what << " [" << i << "]: got " << got[i] << ", want " << want[i];
      ++bad;
    }
}

TEST(rms_norm, matches_cpu_reference_over_odd_shapes) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(1);
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int64_t rows : {1, 19, 99})
      for (int64_t hidden : {111, 128, 4096}) {
        const auto x = random_values(rows * hidden, dt, rng, -3.f, 3.f);
        const auto w = random_values(hidden, dt, rng, 0.5f, 1.5f);
        dev_buf<uint16_t> dx(to_bits(x, dt)), dw(to_bits(w, dt)), dout(rows * hidden);
        ASSERT_EQ(launch_rms_norm({dout.get(), dx.get(), dw.get(), rows, hidden, 1e-5f, dt}, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        expect_close(from_bits(dout.download(), dt), ref_norm(x, w, rows, hidden, 1e-5f, dt), 1.6e-2f,
                     std::string("rms_norm ") + dt_name(dt) + " rows " + std::to_string(rows) + " hidden " +
                         std::to_string(hidden));
      }
}

TEST(fused_add_rms_norm, updates_residual_and_norms_in_place) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(2);
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int64_t rows : {1, 19, 99})
      for (int64_t hidden : {111, 200, 1024}) {
        const auto x = random_values(rows * hidden, dt, rng);
        const auto res = random_values(rows * hidden, dt, rng, -2.f, 2.f);
        const auto w = random_values(hidden, dt, rng, 0.5f, 1.5f);
        std::vector<float> sum(x.size());
        for (size_t i = 0; i < x.size(); ++i) sum[i] = round_to_device(dt, x[i] + res[i]);
        dev_buf<uint16_t> dx(to_bits(x, dt)), dres(to_bits(res, dt)), dw(to_bits(w, dt));
        // out aliases x, as the forward pass uses it.
        ASSERT_EQ(launch_fused_add_rms_norm({dx.get(), dres.get(), dx.get(), dw.get(), rows, hidden, 1e-6f, dt}, nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what = std::string(dt_name(dt)) + " rows " + std::to_string(rows) + " hidden " +
                                 std::to_string(hidden);
        expect_close(from_bits(dres.download(), dt), sum, 0.f, "residual " + what);
        expect_close(from_bits(dx.download(), dt), ref_norm(sum, w, rows, hidden, 1e-6f, dt), 1.6e-2f, "norm " + what);
      }
}

// Gemma3RMSNorm: y = dtype(x̂ * (1 + w)) with w as stored (near 0), no rounding of x̂; plain and
// fused (residual add first), out aliasing the input as the forward pass uses it.
TEST(rms_norm, gemma_form_multiplies_by_one_plus_w_in_float32) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(5);
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int64_t rows : {1, 19, 99})
      for (int64_t hidden : {111, 640}) {
        const auto x = random_values(rows * hidden, dt, rng, -3.f, 3.f);
        const auto res = random_values(rows * hidden, dt, rng, -2.f, 2.f);
        const auto w = random_values(hidden, dt, rng, -0.5f, 0.5f);
        auto ref = [&](const std::vector<float>& in) {
          std::vector<float> out(in.size());
          for (int64_t r = 0; r < rows; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < hidden; ++i) ss += double(in[r * hidden + i]) * in[r * hidden + i];
            const float inv = 1.f / std::sqrt(float(ss / hidden) + 1e-6f);
            for (int64_t i = 0; i < hidden; ++i) out[r * hidden + i] = in[r * hidden + i] * inv * (1.f + w[i]);
          }
          return out;
        };
        const std::string what = std::string(dt_name(dt)) + " rows " + std::to_string(rows) + " hidden " +
                                 std::to_string(hidden);
        dev_buf<uint16_t> dx(to_bits(x, dt)), dres(to_bits(res, dt)), dw(to_bits(w, dt));
        rms_norm_args a{dx.get(), dx.get(), dw.get(), rows, hidden, 1e-6f, dt};
        a.gemma_form = true;
        ASSERT_EQ(launch_rms_norm(a, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        // 8e-3: one rounding to the dtype (w * x̂ rounded first, as the Llama form does, is off by
        // up to 2^-8 relative on top, and w near -1 makes 1 + w tiny: the bound is absolute there).
        expect_close(from_bits(dx.download(), dt), ref(x), 8e-3f, "gemma rms_norm " + what);

        dev_buf<uint16_t> dx2(to_bits(x, dt));
        fused_add_rms_norm_args f{dx2.get(), dres.get(), dx2.get(), dw.get(), rows, hidden, 1e-6f, dt};
        f.gemma_form = true;
        ASSERT_EQ(launch_fused_add_rms_norm(f, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        std::vector<float> sum(x.size());
        for (size_t i = 0; i < x.size(); ++i) sum[i] = round_to_device(dt, x[i] + res[i]);
        expect_close(from_bits(dres.download(), dt), sum, 0.f, "gemma residual " + what);
        expect_close(from_bits(dx2.download(), dt), ref(sum), 8e-3f, "gemma fused norm " + what);
      }
}

}  // namespace
}  // namespace troupe
