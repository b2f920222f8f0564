// The cuBLAS GEMM wrapper (HF [out, in] weights, row-major activations) vs a CPU reference.
#include <cmath>

#include "gpu_test_util.h"
#include "kernels/cublas_gemm.h"

namespace troupe {
namespace {

using namespace test;

TEST(cublas_gemm, matches_cpu_reference_over_odd_shapes) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(6);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  dev_buf<char> ws(4 << 20);
  cublas_gemm g;
  ASSERT_TRUE(g.init(stream, ws.get(), 4 << 20).ok());
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int64_t m : {1, 19, 99})
      for (int64_t n : {111, 256})
        for (int64_t k : {64, 200})
          for (bool f32 : {false, true}) {
            const auto x = random_values(m * k, dt, rng), w = random_values(n * k, dt, rng);
            dev_buf<uint16_t> dx(to_bits(x, dt)), dw(to_bits(w, dt));
            dev_buf<float> dy32(m * n);
            dev_buf<uint16_t> dy16(m * n);
            gemm_args a;
            a.y = f32 ? static_cast<void*>(dy32.get()) : static_cast<void*>(dy16.get());
            a.x = dx.get();
            a.w = dw.get();
            a.m = m, a.n = n, a.k = k;
            a.y_float32 = f32;
            a.dtype = dt;
            auto st = g.run(a);
            ASSERT_TRUE(st.ok()) << st.err().to_string();
            ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
            const auto y = f32 ? dy32.download() : from_bits(dy16.download(), dt);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < n; ++j) {
                double ref = 0;
                for (int64_t t = 0; t < k; ++t) ref += double(x[i * k + t]) * w[j * k + t];
                ASSERT_NEAR(y[i * n + j], ref, (f32 ? 1e-3 : 1e-2) * (1 + std::fabs(ref)))
                    << dt_name(dt) << " m " << m << " n " << n << " k " << k << " at " << i << "," << j;
              }
          }
  cudaStreamDestroy(stream);
}

TEST(cublas_gemm, rejects_use_before_init) {
  cublas_gemm g;
  gemm_args a;
  a.m = a.n = a.k = 1;
  EXPECT_FALSE(g.run(a).ok());
}

}  // namespace
}  // namespace troupe
