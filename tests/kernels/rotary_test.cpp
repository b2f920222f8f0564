// Rotary (HF rotate_half) with the fused QKV bias vs a CPU reference; the llama3 frequency table.
#include <cmath>

#include "gpu_test_util.h"
#include "kernels/rotary.h"

namespace troupe {
namespace {

using namespace test;

TEST(rotary_inv_freq, default_and_llama3_scaling) {
  rope_config r;
  r.theta = 500000.0;
  const auto def = rotary_inv_freq(r, 128);
  ASSERT_EQ(def.size(), 64u);
  EXPECT_FLOAT_EQ(def[0], 1.f);
  EXPECT_NEAR(def[1], std::pow(500000.0, -2.0 / 128), 1e-6);
  r.type = "llama3";
  r.factor = 8;
  r.low_freq_factor = 1;
  r.high_freq_factor = 4;
  r.original_max_position_embeddings = 8192;
  const auto l3 = rotary_inv_freq(r, 128);
  const double pi = 3.14159265358979323846;
  for (size_t i = 0; i < def.size(); ++i) {
    const double wavelen = 2 * pi / def[i];
    if (wavelen < 8192.0 / 4) EXPECT_FLOAT_EQ(l3[i], def[i]) << i;          // high frequencies kept
    else if (wavelen > 8192.0) EXPECT_FLOAT_EQ(l3[i], def[i] / 8) << i;     // low frequencies scaled
    else EXPECT_TRUE(l3[i] <= def[i] && l3[i] >= def[i] / 8) << i;          // smooth in between
  }
}

TEST(rotary, matches_cpu_reference_with_bias) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(5);
  rope_config rope;
  rope.theta = 10000.0;
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int D : {16, 64, 128})
      for (int64_t tokens : {1, 19, 99})
        for (bool with_bias : {false, true}) {
          const int Hq = 6, Hkv = 2, width = (Hq + 2 * Hkv) * D;
          const auto x = random_values(tokens * width, dt, rng);
          const auto bias = random_values(width, dt, rng, -0.5f, 0.5f);
          std::vector<int32_t> pos(tokens);
          for (auto& p : pos) p = static_cast<int32_t>(rng() % 9000);
          const auto inv = rotary_inv_freq(rope, D);
          dev_buf<uint16_t> dx(to_bits(x, dt)), db(to_bits(bias, dt));
          dev_buf<int32_t> dpos(pos);
          dev_buf<float> dinv(inv);
          rotary_args a;
          a.qkv = dx.get();
          a.bias = with_bias ? db.get() : nullptr;
          a.positions = dpos.get();
          a.inv_freq = dinv.get();
          a.num_tokens = tokens;
          a.num_heads = Hq;
          a.num_kv_heads = Hkv;
          a.head_dim = D;
          a.dtype = dt;
          ASSERT_EQ(launch_rotary(a, nullptr), cudaSuccess);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const auto got = from_bits(dx.download(), dt);
          int bad = 0;
          for (int64_t t = 0; t < tokens; ++t)
            for (int h = 0; h < Hq + 2 * Hkv; ++h)
              for (int i = 0; i < D / 2 && bad < 5; ++i) {
                const int64_t base = t * width + h * D;
                float a0 = x[base + i], b0 = x[base + i + D / 2];
                if (with_bias) {
                  a0 = round_to_device(dt, a0 + bias[h * D + i]);
                  b0 = round_to_device(dt, b0 + bias[h * D + i + D / 2]);
                }
                float wa = a0, wb = b0;
                if (h < Hq + Hkv) {
                  const double ang = double(pos[t]) * double(inv[i]);
                  wa = float(a0 * std::cos(ang) - b0 * std::sin(ang));
                  wb = float(b0 * std::cos(ang) + a0 * std::sin(ang));
                }
                const float ga = got[base + i], gb = got[base + i + D / 2];
                if (std::fabs(ga - wa) > 2e-2f + 1e-2f * std::fabs(wa) || std::fabs(gb - wb) > 2e-2f + 1e-2f * std::fabs(wb)) {
                  ADD_FAILURE() << dt_name(dt) << " D " << D << " t " << t << " h " << h << " i " << i << ": (" << ga
                                << ", " << gb << ") vs (" << wa << ", " << wb << ")";
                  ++bad;
                }
              }
        }
}

}  // namespace
}  // namespace troupe
