// KV append into paged blocks and paged attention (prefill, chunked prefill, decode, split-K, GQA,
// MQA, mixed batches) vs a dense CPU reference. Block tables are shuffled and the pool starts with
// garbage, so wrong addressing or masking shows up.
#include <algorithm>
#include <cmath>

#include "gpu_test_util.h"
#include "kernels/attention.h"
#include "kernels/kv_cache.h"

namespace troupe {
namespace {

using namespace test;

struct seq_spec {
  int32_t start_pos;
  int32_t q_len;
};

struct attn_case {
  kernel_dtype dt;
  int D, Hq, Hkv, bs;
  std::vector<seq_spec> seqs;
  int max_splits;
  int64_t partial_capacity;
  int32_t window = 0;  // sliding window (0 = full attention)
};

std::string describe(const attn_case& c) {
  std::string s = std::string(dt_name(c.dt)) + " D " + std::to_string(c.D) + " Hq " + std::to_string(c.Hq) + " Hkv " +
                  std::to_string(c.Hkv) + " bs " + std::to_string(c.bs) + " splits<=" + std::to_string(c.max_splits) +
                  " seqs";
  for (size_t i = 0; i < c.seqs.size() && i < 4; ++i)
    s += " (" + std::to_string(c.seqs[i].start_pos) + "+" + std::to_string(c.seqs[i].q_len) + ")";
  if (c.seqs.size() > 4) s += " ... " + std::to_string(c.seqs.size()) + " in all";
  if (c.window > 0) s += " window " + std::to_string(c.window);
  return s;
}

void run_case(const attn_case& c, std::mt19937& rng, int32_t* num_splits_used = nullptr) {
  SCOPED_TRACE(describe(c));
  const int D = c.D, width = (c.Hq + 2 * c.Hkv) * D, group = c.Hq / c.Hkv;
  paged_kv_layout lay;
  lay.num_layers = 2;
  lay.num_kv_heads = c.Hkv;
  lay.block_seq_len = c.bs;
  lay.head_dim = D;
  const int32_t layer = 1;
  // Block tables: every sequence gets a shuffled set of distinct blocks.
  int64_t total_blocks = 3;
  int32_t max_bt = 1;
  for (auto& s : c.seqs) {
    const int32_t n = (s.start_pos + s.q_len + c.bs - 1) / c.bs;
    total_blocks += n;
    max_bt = std::max(max_bt, n);
  }
  lay.num_blocks = total_blocks;
  std::vector<int32_t> perm(total_blocks);
  for (int32_t i = 0; i < total_blocks; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  const int32_t nseq = static_cast<int32_t>(c.seqs.size());
  std::vector<int32_t> tables(static_cast<size_t>(nseq) * max_bt, -1);
  int32_t next = 0;
  for (int32_t i = 0; i < nseq; ++i)
    for (int32_t b = 0; b < (c.seqs[i].start_pos + c.seqs[i].q_len + c.bs - 1) / c.bs; ++b) tables[i * max_bt + b] = perm[next++];

  std::vector<float> pool = random_values(static_cast<size_t>(lay.block_elements() * total_blocks), c.dt, rng, -4.f, 4.f);
  int64_t T = 0;
  for (auto& s : c.seqs) T += s.q_len;
  const auto qkv = random_values(static_cast<size_t>(T * width), c.dt, rng);
  // Dense K/V per sequence (positions x kv heads x D) and the history written straight into the pool.
  std::vector<std::vector<float>> K(nseq), V(nseq);
  std::vector<int32_t> slots;
  std::vector<attention_seq> aseqs;
  int64_t row = 0;
  for (int32_t i = 0; i < nseq; ++i) {
    const auto& s = c.seqs[i];
    const int64_t len = s.start_pos + s.q_len;
    K[i].resize(len * c.Hkv * D);
    V[i].resize(len * c.Hkv * D);
    for (int64_t p = 0; p < len; ++p) {
      const int32_t block = tables[i * max_bt + p / c.bs], in_block = static_cast<int32_t>(p % c.bs);
      for (int h = 0; h < c.Hkv; ++h)
        for (int d = 0; d < D; ++d) {
          float kval, vval;
          if (p < s.start_pos) {
            kval = round_to_device(c.dt, std::uniform_real_distribution<float>(-1, 1)(rng));
            vval = round_to_device(c.dt, std::uniform_real_distribution<float>(-1, 1)(rng));
            pool[lay.offset(block, layer, 0, h, in_block) + d] = kval;
            pool[lay.offset(block, layer, 1, h, in_block) + d] = vval;
          } else {
            const int64_t t = row + (p - s.start_pos);
            kval = qkv[t * width + (c.Hq + h) * D + d];
            vval = qkv[t * width + (c.Hq + c.Hkv + h) * D + d];
          }
          K[i][(p * c.Hkv + h) * D + d] = kval;
          V[i][(p * c.Hkv + h) * D + d] = vval;
        }
      if (p >= s.start_pos) slots.push_back(block * c.bs + in_block);
    }
    aseqs.push_back({static_cast<int32_t>(row), s.q_len, s.start_pos, 0});
    row += s.q_len;
  }

  attention_schedule sched;
  attention_schedule_options so;
  so.num_heads = c.Hq;
  so.num_kv_heads = c.Hkv;
  so.max_splits = c.max_splits;
  so.partial_capacity = c.partial_capacity;
  make_attention_schedule(aseqs.data(), nseq, so, sched);
  if (num_splits_used) *num_splits_used = sched.num_splits;

  dev_buf<uint16_t> dpool(to_bits(pool, c.dt)), dqkv(to_bits(qkv, c.dt)), dout(T * c.Hq * D);
  dev_buf<int32_t> dslots(slots), dtables(tables);
  dev_buf<attention_seq> dseqs(aseqs);
  dev_buf<attention_work> dwork(sched.work);
  dev_buf<float> dpo(std::max<int64_t>(c.partial_capacity, 1) * D), dpml(std::max<int64_t>(c.partial_capacity, 1) * 2);
  lay.pool = dpool.get();

  append_kv_args ak;
  ak.cache = lay;
  ak.layer = layer;
  ak.k = dqkv.get() + c.Hq * D;
  ak.v = dqkv.get() + (c.Hq + c.Hkv) * D;
  ak.row_stride = width;
  ak.slots = dslots.get();
  ak.num_tokens = T;
  ak.dtype = c.dt;
  ASSERT_EQ(launch_append_kv(ak, nullptr), cudaSuccess);

  paged_attention_args a;
  a.out = dout.get();
  a.q = dqkv.get();
  a.q_stride = width;
  a.cache = lay;
  a.layer = layer;
  a.block_tables = dtables.get();
  a.max_blocks_per_seq = max_bt;
  a.seqs = dseqs.get();
  a.work = dwork.get();
  a.num_tokens = T;
  a.num_heads = c.Hq;
  a.set_schedule(sched);
  a.partial_o = dpo.get();
  a.partial_ml = dpml.get();
  a.dtype = c.dt;
  a.window = c.window;
  ASSERT_EQ(launch_paged_attention(a, nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  // The appended K/V landed in their slots.
  const auto pool_after = from_bits(dpool.download(), c.dt);
  for (int32_t i = 0; i < nseq; ++i)
    for (int64_t p = c.seqs[i].start_pos; p < c.seqs[i].start_pos + c.seqs[i].q_len; ++p) {
      const int32_t block = tables[i * max_bt + p / c.bs];
      for (int h = 0; h < c.Hkv; ++h)
        for (int d = 0; d < D; d += 7) {
          ASSERT_EQ(pool_after[lay.offset(block, layer, 0, h, p % c.bs) + d], K[i][(p * c.Hkv + h) * D + d]);
          ASSERT_EQ(pool_after[lay.offset(block, layer, 1, h, p % c.bs) + d], V[i][(p * c.Hkv + h) * D + d]);
        }
    }

  const auto got = from_bits(dout.download(), c.dt);
  const float scale = 1.f / std::sqrt(static_cast<float>(D));
  int bad = 0;
  for (int32_t i = 0; i < nseq && bad < 5; ++i)
    for (int32_t t = 0; t < c.seqs[i].q_len && bad < 5; ++t) {
      const int64_t tok = aseqs[i].q_begin + t, pos = c.seqs[i].start_pos + t;
      for (int h = 0; h < c.Hq && bad < 5; ++h) {
        const int kvh = h / group;
        const int64_t lo = c.window > 0 ? std::max<int64_t>(0, pos - c.window + 1) : 0;
        std::vector<double> s(pos + 1, 0.0);
        double mx = -1e30, sum = 0;
        for (int64_t k = lo; k <= pos; ++k) {
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += double(qkv[tok * width + h * D + d]) * K[i][(k * c.Hkv + kvh) * D + d];
          s[k] = dot * scale;
          mx = std::max(mx, s[k]);
        }
        for (int64_t k = lo; k <= pos; ++k) sum += (s[k] = std::exp(s[k] - mx));
        for (int d = 0; d < D; ++d) {
          double ref = 0;
          for (int64_t k = lo; k <= pos; ++k) ref += s[k] / sum * V[i][(k * c.Hkv + kvh) * D + d];
          const float g = got[(tok * c.Hq + h) * D + d];
          if (!(std::fabs(g - ref) <= 1e-2 + 1e-2 * std::fabs(ref))) {
            ADD_FAILURE() << "seq " << i << " token " << t << " (pos " << pos << ") head " << h << " dim " << d
                          << ": got " << g << ", want " << ref;
            if (++bad >= 5) break;
          }
        }
      }
    }
}

TEST(paged_attention, prefill_from_zero_and_chunked_prefill) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(7);
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16})
    for (int D : {16, 48, 64, 96, 128, 256}) {  // 48: tiny-gemma3; 256: Gemma 3 (dynamic shared memory)
      run_case({dt, D, 4, 2, 16, {{0, 99}}, 1, 0}, rng);
      run_case({dt, D, 4, 4, 64, {{37, 19}, {0, 1}, {5, 33}}, 1, 0}, rng);
    }
}

TEST(paged_attention, decode_batches_short_and_long_contexts) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(8);
  for (int batch : {1, 19, 99}) {
    std::vector<seq_spec> seqs;
    for (int i = 0; i < batch; ++i) seqs.push_back({static_cast<int32_t>(rng() % 300), 1});
    seqs[0].start_pos = 0;  // a first token
    run_case({kernel_dtype::bf16, 128, 32, 8, 16, seqs, 1, 0}, rng);
  }
}

TEST(paged_attention, split_k_matches_unsplit_for_long_decode) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(9);
  for (int D : {64, 128}) {
    int32_t splits = 0;
    run_case({kernel_dtype::bf16, D, 8, 2, 64, {{3000, 1}}, 8, 8 * 8}, rng, &splits);
    EXPECT_GT(splits, 1) << "the long decode should have been split";
    run_case({kernel_dtype::bf16, D, 8, 2, 16, {{2500, 1}, {7, 1}, {1100, 1}}, 16, 3 * 8 * 16}, rng, &splits);
    EXPECT_GT(splits, 1);
    // Too little partial space: the schedule falls back to fewer splits and stays correct.
    run_case({kernel_dtype::f16, D, 8, 2, 16, {{2000, 1}}, 16, 8 * 2}, rng, &splits);
    EXPECT_LE(splits, 2);
  }
}

TEST(paged_attention, mqa_and_wide_groups_in_mixed_batches) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(10);
  run_case({kernel_dtype::bf16, 64, 8, 1, 16, {{0, 40}, {100, 1}, {20, 7}}, 1, 0}, rng);
  run_case({kernel_dtype::bf16, 128, 32, 1, 16, {{0, 21}, {300, 1}}, 1, 0}, rng);  // group 32 > 16 rows
  run_case({kernel_dtype::f16, 32, 4, 2, 16, {{600, 1}, {0, 50}, {999, 1}}, 8, 3 * 50 * 4 * 8}, rng);
}

TEST(attention_schedule, tiles_every_token_once) {
  std::vector<attention_seq> seqs = {{0, 99, 0, 0}, {99, 1, 50, 0}, {100, 17, 3, 0}};
  attention_schedule s;
  attention_schedule_options o;
  o.num_heads = 12;
  o.num_kv_heads = 4;  // group 3: 5 tokens per tile
  make_attention_schedule(seqs.data(), 3, o, s);
  EXPECT_EQ(s.heads_per_cta, 3);
  EXPECT_EQ(s.tile_tokens, 5);
  EXPECT_EQ(s.num_splits, 1);
  EXPECT_EQ(s.work.size(), 20u + 1u + 4u);
  EXPECT_TRUE(attention_head_dim_supported(128));
  EXPECT_TRUE(attention_head_dim_supported(48));
  EXPECT_TRUE(attention_head_dim_supported(256));
  EXPECT_FALSE(attention_head_dim_supported(80));
}

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

// Sliding window (Mistral, Gemma 3's local layers): a token at position p sees keys (p - window, p],
// in prefill, chunked prefill, decode and split-K alike.
TEST(paged_attention, sliding_window_masks_keys_before_the_window) {
  TROUPE_REQUIRE_GPU();
  std::mt19937 rng(11);
  for (kernel_dtype dt : {kernel_dtype::bf16, kernel_dtype::f16}) {
    run_case({dt, 64, 4, 2, 16, {{0, 99}}, 1, 0, 8}, rng);
    run_case({dt, 128, 8, 1, 16, {{37, 19}, {0, 1}, {300, 1}, {5, 70}}, 1, 0, 33}, rng);
  }
  int32_t splits = 0;
  run_case({kernel_dtype::bf16, 128, 8, 2, 64, {{3000, 1}}, 8, 8 * 8, 512}, rng, &splits);
  EXPECT_GT(splits, 1) << "the long decode should have been split";
  // Gemma 3's shape: head_dim 256, 4 q heads on 1 KV head, window 512, split-K decode too.
  run_case({kernel_dtype::bf16, 256, 4, 1, 16, {{0, 70}, {600, 1}, {20, 9}}, 1, 0, 512}, rng);
  run_case({kernel_dtype::bf16, 256, 4, 1, 64, {{3000, 1}}, 8, 4 * 8, 512}, rng, &splits);
  EXPECT_GT(splits, 1) << "the long head_dim 256 decode should have been split";
}

}  // namespace
}  // namespace troupe
