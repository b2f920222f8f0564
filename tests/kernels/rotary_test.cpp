// Rotary (HF rotate_half) with the fused QKV bias vs a CPU reference; the fused KV append; the
// llama3 frequency table.
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

// With slots, the rotated K and the biased V land in the paged cache exactly as the rotated row
// holds them (the same bits launch_append_kv would copy); slot -1 writes nothing.
TEST(rotary, fused_kv_append_writes_the_rotated_k_and_v) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(8);
  rope_config rope;
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (bool with_bias : {false, true}) {
      const int Hq = 4, Hkv = 2, D = 64, width = (Hq + 2 * Hkv) * D;
      const int64_t tokens = 5;
      paged_kv_layout cache;
      cache.num_layers = 3;
      cache.num_kv_heads = Hkv;
      cache.block_seq_len = 4;
      cache.head_dim = D;
      cache.num_blocks = 6;
      const uint64_t pool_elems = paged_kv_block_bytes(cache, dt) / 2 * cache.num_blocks;
      dev_buf<uint16_t> pool(pool_elems);  // zeroed
      cache.pool = pool.get();
      const auto x = random_values(tokens * width, dt, rng);
      const auto bias = random_values(width, dt, rng, -0.5f, 0.5f);
      const std::vector<int32_t> pos = {0, 7, 8, 30, 2}, slots = {5, 22, 9, -1, 0};
      dev_buf<uint16_t> dx(to_bits(x, dt)), db(to_bits(bias, dt));
      dev_buf<int32_t> dpos(pos), dslots(slots);
      dev_buf<float> dinv(rotary_inv_freq(rope, D));
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
      a.slots = dslots.get();
      a.cache = cache;
      a.layer = 1;
      ASSERT_EQ(launch_rotary(a, nullptr), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const auto row = dx.download();
      const auto got = pool.download();
      std::vector<bool> written(pool_elems, false);
      for (int64_t t = 0; t < tokens; ++t) {
        if (slots[t] < 0) continue;
        for (int kv = 0; kv < 2; ++kv)
          for (int h = 0; h < Hkv; ++h)
            for (int d = 0; d < D; ++d) {
              const int64_t off = cache.offset(slots[t] / 4, 1, kv, h, slots[t] % 4) + d;
              written[off] = true;
              ASSERT_EQ(got[off], row[t * width + (Hq + kv * Hkv + h) * D + d])
                  << dt_name(dt) << " token " << t << " kv " << kv << " head " << h << " dim " << d;
            }
      }
      for (uint64_t i = 0; i < pool_elems; ++i)
        if (!written[i]) ASSERT_EQ(got[i], 0) << "stray write at element " << i;
    }
}

}  // namespace
}  // namespace troupe
