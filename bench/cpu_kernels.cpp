// bench_cpu_kernels: time per forward step spent in the non-matmul kernels (RMSNorm, rotary,
// SiLU-and-mul, the attention softmax) at a model's shapes, scalar against AVX2 against AVX2 with
// the AVX-512 SiLU/softmax in one run (alternating, median), and split over the thread pool by rows
// against one thread.
// Usage: bench_cpu_kernels [--rows 1,128] [--context N] [--threads N] [--runs R]
// Shapes: SmolLM2-135M (hidden 576, intermediate 1536, 9 query / 3 KV heads of 64, 30 layers).
// A decode step (rows = 1) attends over --context positions; a prefill of R rows at positions
// [context, context + R) attends causally, as the forward pass does.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "runtime/cpu_kernels.h"
#include "runtime/cpu_simd.h"
#include "runtime/cpu_thread_pool.h"

namespace {

using namespace troupe;
using clock_type = std::chrono::steady_clock;

constexpr int64_t kHidden = 576, kInter = 1536, kHeads = 9, kKvHeads = 3, kHeadDim = 64, kLayers = 30;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct buffers {
  std::vector<float> x, y, w, qkv, cs, sn, gate_up, act, scores;
  buffers(int64_t rows, int64_t max_ctx) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    auto fill = [&](std::vector<float>& v, int64_t n) {
      v.resize(static_cast<size_t>(n));
      for (auto& e : v) e = u(rng);
    };
    fill(x, rows * kHidden);
    fill(y, rows * kHidden);
    fill(w, kHidden);
    fill(qkv, rows * (kHeads + 2 * kKvHeads) * kHeadDim);
    fill(cs, rows * kHeadDim / 2);
    fill(sn, rows * kHeadDim / 2);
    fill(gate_up, rows * 2 * kInter);
    fill(act, rows * kInter);
    fill(scores, max_ctx);
  }
};

// One step's non-matmul work over `rows` rows; parts timed apart into t[0..3].
void step(buffers& b, int64_t rows, int64_t context, cpu_thread_pool* pool, double* t) {
  auto split = [&](auto&& fn) {  // rows in one call, or one task per thread over contiguous rows
    if (!pool || rows < 2) return fn(0, rows);
    const int64_t nt = pool->num_threads(), per = (rows + nt - 1) / nt;
    pool->parallel_for(nt, [&](int64_t i) {
      const int64_t r0 = i * per, r1 = std::min(rows, r0 + per);
      if (r0 < r1) fn(r0, r1);
    });
  };
  const int64_t qkv_row = (kHeads + 2 * kKvHeads) * kHeadDim;
  for (int64_t l = 0; l < kLayers; ++l) {
    auto t0 = clock_type::now();
    for (int rep = 0; rep < 2; ++rep)  // attention and MLP norms
      split([&](int64_t r0, int64_t r1) {
        rmsnorm(b.x.data() + r0 * kHidden, b.w.data(), r1 - r0, kHidden, 1e-5, b.y.data() + r0 * kHidden);
      });
    auto t1 = clock_type::now();
    for (int64_t r = 0; r < rows; ++r) {
      float* q = b.qkv.data() + r * qkv_row;
      rope_apply(q, kHeads, kHeadDim, b.cs.data() + r * kHeadDim / 2, b.sn.data() + r * kHeadDim / 2);
      rope_apply(q + kHeads * kHeadDim, kKvHeads, kHeadDim, b.cs.data() + r * kHeadDim / 2, b.sn.data() + r * kHeadDim / 2);
    }
    auto t2 = clock_type::now();
    split([&](int64_t r0, int64_t r1) {
      silu_mul(b.gate_up.data() + r0 * 2 * kInter, r1 - r0, kInter, b.act.data() + r0 * kInter);
    });
    auto t3 = clock_type::now();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = rows == 1 ? context : context + r + 1;
      for (int64_t h = 0; h < kHeads; ++h) {
        std::fill(b.scores.begin(), b.scores.begin() + n, 0.5f - static_cast<float>(h));
        softmax_numerators(b.scores.data(), n);
      }
    }
    auto t4 = clock_type::now();
    t[0] += std::chrono::duration<double>(t1 - t0).count();
    t[1] += std::chrono::duration<double>(t2 - t1).count();
    t[2] += std::chrono::duration<double>(t3 - t2).count();
    t[3] += std::chrono::duration<double>(t4 - t3).count();
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> row_counts = {1, 128};
  int64_t context = 72;
  int threads = 2, runs = 31;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rows" && i + 1 < argc) {
      row_counts.clear();
      for (char* s = argv[++i]; *s;) {
        row_counts.push_back(std::strtol(s, &s, 10));
        if (*s == ',') ++s;
      }
    } else if (a == "--context" && i + 1 < argc) context = std::max(1, std::atoi(argv[++i]));
    else if (a == "--threads" && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else return std::fprintf(stderr, "usage: bench_cpu_kernels [--rows 1,128] [--context N] [--threads N] [--runs R]\n"), 2;
  }
  cpu_thread_pool pool(threads);
  std::printf("SmolLM2-135M shapes, %ld layers; softmax over %ld cached positions (+ the rows' own, causal); "
              "median of %d alternating runs; us per forward step\n",
              static_cast<long>(kLayers), static_cast<long>(context), runs);
  std::printf("%5s %-22s %9s %9s %9s %9s %9s\n", "rows", "variant", "rmsnorm", "rope", "silu_mul", "softmax", "total");
  for (int64_t rows : row_counts) {
    buffers b(rows, context + rows + 1);
    struct variant {
      const char* name;
      bool scalar;
      bool avx512;
      bool parallel;
    };
    const variant variants[] = {{"scalar, 1 thread", true, false, false},
                                {"avx2, 1 thread", false, false, false},
                                {"avx2+512, 1 thread", false, true, false},
                                {"avx2+512, rows on pool", false, true, true}};
    constexpr int kVariants = 4;
    std::vector<double> parts[kVariants][5];
    for (int r = 0; r < runs; ++r)
      for (int v = 0; v < kVariants; ++v) {
        set_cpu_matmul_scalar(variants[v].scalar);
        simd_avx512::set_disabled(!variants[v].avx512);
        double t[4] = {};
        step(b, rows, context, variants[v].parallel ? &pool : nullptr, t);
        for (int p = 0; p < 4; ++p) parts[v][p].push_back(t[p] * 1e6);
        parts[v][4].push_back((t[0] + t[1] + t[2] + t[3]) * 1e6);
      }
    set_cpu_matmul_scalar(false);
    simd_avx512::set_disabled(false);
    for (int v = 0; v < kVariants; ++v)
      std::printf("%5ld %-22s %9.1f %9.1f %9.1f %9.1f %9.1f\n", static_cast<long>(rows), variants[v].name,
                  median(parts[v][0]), median(parts[v][1]), median(parts[v][2]), median(parts[v][3]), median(parts[v][4]));
  }
  return 0;
}
