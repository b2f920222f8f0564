// Per-head q/k RMSNorm kernel (Qwen3's q_norm/k_norm, Gemma's (1 + w) form) vs a CPU reference
// over odd shapes, bf16 and fp16: q and k heads normed with their own weights, v untouched.
#include <cmath>

#include "gpu_test_util.h"
#include "kernels/head_norm.h"

namespace troupe {
namespace {

using namespace test;

TEST(head_rms_norm, norms_q_and_k_heads_in_place_and_leaves_v) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(3);
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int64_t tokens : {1, 19, 99})
      for (auto [hq, hkv, d] : {std::tuple{4, 2, 32}, std::tuple{6, 1, 128}, std::tuple{3, 3, 24}})
        for (float offset : {0.f, 1.f}) {
          const int64_t row = (hq + 2 * hkv) * d;
          const auto x = random_values(tokens * row, dt, rng, -3.f, 3.f);
          const auto wq = random_values(d, dt, rng, 0.5f, 1.5f), wk = random_values(d, dt, rng, 0.5f, 1.5f);
          dev_buf<uint16_t> dx(to_bits(x, dt)), dq(to_bits(wq, dt)), dk(to_bits(wk, dt));
          head_rms_norm_args a;
          a.qkv = dx.get();
          a.q_weight = dq.get();
          a.k_weight = dk.get();
          a.num_tokens = tokens;
          a.num_heads = hq;
          a.num_kv_heads = hkv;
          a.head_dim = d;
          a.eps = 1e-6f;
          a.weight_offset = offset;
          a.dtype = dt;
          ASSERT_EQ(launch_head_rms_norm(a, nullptr), cudaSuccess);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const auto got = from_bits(dx.download(), dt);
          int bad = 0;
          for (int64_t t = 0; t < tokens && bad < 5; ++t)
            for (int64_t h = 0; h < hq + 2 * hkv && bad < 5; ++h) {
              const float* in = x.data() + t * row + h * d;
              double ss = 0;
              for (int64_t i = 0; i < d; ++i) ss += double(in[i]) * in[i];
              const float inv = 1.f / std::sqrt(float(ss / d) + 1e-6f);
              for (int64_t i = 0; i < d; ++i) {
                const float w = h < hq ? wq[i] : wk[i];
                // Gemma (offset 1) rounds once after the float32 product; Qwen3 rounds x̂ first.
                const float want = h >= hq + hkv ? in[i]
                                   : offset != 0.f ? in[i] * inv * (w + offset)
                                                   : w * round_to_device(dt, in[i] * inv);
                const float g = got[t * row + h * d + i];
                if (!(std::fabs(g - want) <= 1.6e-2f * std::fabs(want) + 1e-3f)) {
                  ADD_FAILURE() << dt_name(dt) << " tokens " << tokens << " head " << h << " [" << i << "]: got " << g
                                << ", want " << want;
                  ++bad;
                }
              }
            }
        }
}

}  // namespace
}  // namespace troupe
