// bench_cuda_decode's serving column: a decode step through forward_sampled with every sequence
// sampled on the device (seeded temperature 0.8, top_k 50, top_p 0.95, repetition penalty 1.1:
// the knobs a chat request sends), so only token ids leave the GPU.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "kernels/cuda_model.h"
#include "runtime/sampler.h"

namespace troupe::bench {

// Median seconds of `runs` forward_sampled() calls over `b` (its seqs get samplers).
inline result<double> time_forward_sampled(cuda_model& m, step_batch b, int32_t warmup, int32_t runs) {
  sampling_params p;
  p.temperature = 0.8f;
  p.top_k = 50;
  p.top_p = 0.95f;
  p.repetition_penalty = 1.1f;
  p.max_tokens = 1 << 20;
  for (seq_step& s : b.seqs) {
    p.seed = static_cast<uint64_t>(s.seq_id);
    s.sampling = std::make_shared<sampler>(p, std::vector<int32_t>(s.tokens.begin(), s.tokens.end()));
    s.want_logits = true;
  }
  step_logits rows, out;
  std::vector<double> t;
  for (int32_t i = 0; i < warmup + runs; ++i) {
    out = {};
    const auto t0 = std::chrono::steady_clock::now();
    TROUPE_TRY(m.forward_sampled(b, rows, out));
    if (i >= warmup) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (out.num_rows() != 0) return make_error(errc::internal, "forward_sampled returned logits rows");
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace troupe::bench
