// The skinny (decode) GEMM vs a double-precision CPU reference and vs cuBLAS, over odd shapes:
// every m in 1..8, n not a multiple of the CTA's 8 columns, k not a multiple of 256, padded rows.
#include <cmath>

#include "gpu_test_util.h"
#include "kernels/skinny_gemm.h"

namespace troupe {
namespace {

using namespace test;

TEST(skinny_gemm, matches_cpu_reference_and_cublas_over_odd_shapes) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(11);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  dev_buf<char> ws(4 << 20);
  cublas_gemm cublas;
  ASSERT_TRUE(cublas.init(stream, ws.get(), 4 << 20).ok());
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int64_t m = 1; m <= kSkinnyGemmMaxRows; ++m)
      for (int64_t n : {1, 13, 203})
        for (int64_t k : {8, 200, 1032})
          for (bool f32 : {false, true}) {
            const int64_t ldx = k + (m % 2 ? 0 : 16);  // even m: rows padded (strided X)
            const auto x = random_values(m * ldx, dt, rng), w = random_values(n * k, dt, rng);
            dev_buf<uint16_t> dx(to_bits(x, dt)), dw(to_bits(w, dt));
            dev_buf<float> y32(m * n), c32(m * n);
            dev_buf<uint16_t> y16(m * n), c16(m * n);
            gemm_args a;
            a.x = dx.get(), a.w = dw.get(), a.m = m, a.n = n, a.k = k, a.ldx = ldx;
            a.y_float32 = f32;
            a.dtype = dt;
            a.y = f32 ? static_cast<void*>(y32.get()) : static_cast<void*>(y16.get());
            ASSERT_TRUE(skinny_gemm_supported(a));
            ASSERT_EQ(launch_skinny_gemm(a, stream), cudaSuccess);
            a.y = f32 ? static_cast<void*>(c32.get()) : static_cast<void*>(c16.get());
            ASSERT_TRUE(cublas.run(a).ok());
            ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
            const auto y = f32 ? y32.download() : from_bits(y16.download(), dt);
            const auto c = f32 ? c32.download() : from_bits(c16.download(), dt);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < n; ++j) {
                double ref = 0;
                for (int64_t t = 0; t < k; ++t) ref += double(x[i * ldx + t]) * w[j * k + t];
                // float32 sums of <= 1032 products: 1e-4 relative; a 16-bit output adds one rounding.
                const double tol = (f32 ? 1e-4 : (dt == kernel_dtype::bf16 ? 8e-3 : 1e-3)) * (1 + std::fabs(ref));
                ASSERT_NEAR(y[i * n + j], ref, tol) << dt_name(dt) << " m " << m << " n " << n << " k " << k << " at " << i
                                                    << "," << j;
                ASSERT_NEAR(y[i * n + j], c[i * n + j], 2 * tol) << "vs cuBLAS, " << dt_name(dt) << " m " << m;
              }
          }
  cudaStreamDestroy(stream);
}

TEST(skinny_gemm, refuses_what_it_does_not_handle) {
  gemm_args a;
  alignas(16) static uint16_t buf[64];
  a.x = a.w = buf;
  a.y = buf;
  a.m = 9, a.n = 4, a.k = 8;
  EXPECT_FALSE(skinny_gemm_supported(a));  // too many rows
  a.m = 2, a.k = 12;
  EXPECT_FALSE(skinny_gemm_supported(a));  // k not a multiple of 8
  a.k = 8, a.beta = 1.f;
  EXPECT_FALSE(skinny_gemm_supported(a));  // accumulation into y
  a.beta = 0.f, a.x = buf + 1;
  EXPECT_FALSE(skinny_gemm_supported(a));  // misaligned rows
  a.x = buf;
  EXPECT_TRUE(skinny_gemm_supported(a));
  EXPECT_EQ(launch_skinny_gemm(gemm_args{}, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace troupe
