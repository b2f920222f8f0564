// cuda_model's prompt scoring (seq_step::prompt_logprobs): the scored rows go through the LM head in
// chunks like the sampled rows, and each chunk's logits are reduced on the device to the target
// token's logprob and the top k; only those numbers are copied back.
#include <algorithm>
#include <vector>

#include "kernels/cuda_model.h"
#include "kernels/embedding.h"
#include "kernels/prompt_scoring.h"
#include "runtime/prompt_logprobs.h"

namespace troupe {

// Design note: no buffer of its own (nothing is allocated after start-up): within one chunk the
// row indices ride in the logits buffer until the GEMM overwrites it, and the targets and the
// results use the residual buffer, free once the gather fed the GEMM.
status cuda_model::run_prompt_scoring(const step_batch& batch, step_logits& out) {
  out.prompt.clear();
  const std::vector<scored_row> todo = rows_to_score(batch);
  if (todo.empty()) return ok_status();
  const int64_t H = cfg_.hidden_size, V = cfg_.vocab_size;
  int32_t k = 0;
  for (const scored_row& s : todo) k = std::max(k, s.k);
  const int64_t scratch_bytes = max_tokens_ * H * kernel_dtype_bytes(opts_.dtype);
  const int64_t chunk = std::min<int64_t>(logit_rows_, scratch_bytes / (4 * (2 + 2 * int64_t{k})));
  if (chunk <= 0) return make_error(errc::invalid_argument, "prompt_logprobs: the top k does not fit the reserve");
  std::vector<int32_t> rows, targets, top_ids;
  std::vector<float> lps, top_lps;
  for (size_t r0 = 0; r0 < todo.size(); r0 += static_cast<size_t>(chunk)) {
    const auto m = static_cast<int32_t>(std::min<size_t>(static_cast<size_t>(chunk), todo.size() - r0));
    rows.resize(m);
    targets.resize(m);
    for (int32_t i = 0; i < m; ++i) rows[i] = static_cast<int32_t>(todo[r0 + i].row), targets[i] = todo[r0 + i].token;
    auto* d_rows = reinterpret_cast<int32_t*>(buf_.logits);
    TROUPE_CUDA_TRY(cudaMemcpyAsync(d_rows, rows.data(), m * 4, cudaMemcpyHostToDevice, stream_), "upload scored rows");
    TROUPE_CUDA_TRY(launch_gather_rows({buf_.residual, buf_.h, d_rows, m, max_tokens_, H, opts_.dtype}, stream_),
                    "gather scored rows");
    gemm_args g;
    g.dtype = opts_.dtype;
    g.y = buf_.logits, g.x = buf_.residual, g.w = lm_head_, g.m = m, g.n = V, g.k = H;
    g.y_float32 = true;
    TROUPE_TRY(matmul(g));
    TROUPE_TRY(softcap_logits(m));
    auto* d_targets = reinterpret_cast<int32_t*>(buf_.residual);
    auto* d_lp = reinterpret_cast<float*>(d_targets + m);
    auto* d_top_ids = reinterpret_cast<int32_t*>(d_lp + m);
    auto* d_top_lps = reinterpret_cast<float*>(d_top_ids + int64_t{m} * k);
    TROUPE_CUDA_TRY(cudaMemcpyAsync(d_targets, targets.data(), m * 4, cudaMemcpyHostToDevice, stream_),
                    "upload scored tokens");
    score_rows_args a;
    a.logits = buf_.logits, a.targets = d_targets, a.num_rows = m, a.vocab = V, a.k = k;
    a.target_logprob = d_lp, a.top_ids = d_top_ids, a.top_logprobs = d_top_lps;
    TROUPE_CUDA_TRY(launch_score_rows(a, stream_), "score rows");
    lps.resize(m);
    top_ids.resize(static_cast<size_t>(m) * k);
    top_lps.resize(static_cast<size_t>(m) * k);
    TROUPE_CUDA_TRY(cudaMemcpyAsync(lps.data(), d_lp, m * 4, cudaMemcpyDeviceToHost, stream_), "copy scores");
    if (k > 0) {
      TROUPE_CUDA_TRY(cudaMemcpyAsync(top_ids.data(), d_top_ids, top_ids.size() * 4, cudaMemcpyDeviceToHost, stream_),
                      "copy top ids");
      TROUPE_CUDA_TRY(cudaMemcpyAsync(top_lps.data(), d_top_lps, top_lps.size() * 4, cudaMemcpyDeviceToHost, stream_),
                      "copy top logprobs");
    }
    TROUPE_CUDA_TRY(cudaStreamSynchronize(stream_), "prompt scoring");  // host vectors are reused next chunk
    for (int32_t i = 0; i < m; ++i) {
      const scored_row& s = todo[r0 + i];
      position_logprobs p{s.seq, s.position, {s.token, lps[i], {}}};
      for (int32_t j = 0; j < s.k; ++j) p.lp.top.push_back({top_ids[size_t(i) * k + j], top_lps[size_t(i) * k + j]});
      out.prompt.push_back(std::move(p));
    }
  }
  return ok_status();
}

}  // namespace troupe
