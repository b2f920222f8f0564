// Executor-side sampling (see step_sampling.h) and the default model_backend::forward_sampled:
// forward() into the caller's reused row buffer, then sample_rows over it.
#include "runtime/step_sampling.h"

#include <algorithm>

#include "runtime/model_backend.h"
#include "runtime/sampler.h"

namespace troupe {

sampled_seq sample_row(sampler& smp, std::span<float> row, int32_t seq) {
  sampled_seq out;
  out.seq = seq;
  sampled_token t = smp.sample(row);
  out.blocked = smp.constraint_blocked();
  out.terminated = smp.constraint_terminated();
  out.token.token = t.token;
  out.token.logprob = t.logprob;
  if (!t.top.empty()) {
    out.token.top.reserve(t.top.size());
    for (const logprob_entry& e : t.top) out.token.top.push_back({e.token, e.logprob});
  }
  return out;
}

void sample_rows(const step_batch& batch, std::span<const int32_t> row_seq, float* rows, int64_t vocab,
                 step_logits& out) {
  out.vocab_size = vocab;
  out.sampled.reserve(out.sampled.size() + row_seq.size());  // one allocation per step, not log2(B)
  const auto v = static_cast<size_t>(vocab);
  for (size_t r = 0; r < row_seq.size(); ++r) {
    const int32_t i = row_seq[r];
    float* row = rows + r * v;
    const seq_step& s = batch.seqs[static_cast<size_t>(i)];
    if (samples_here(s)) {
      out.sampled.push_back(sample_row(*s.sampling, std::span<float>(row, v), i));
    } else {
      out.row_seq.push_back(i);
      out.data.insert(out.data.end(), row, row + v);
    }
  }
}

status model_backend::forward_sampled(const step_batch& batch, step_logits& rows, step_logits& out) {
  TROUPE_TRY(forward(batch, rows));
  out.prompt = std::move(rows.prompt);
  rows.prompt.clear();
  sample_rows(batch, rows.row_seq, rows.data.data(), rows.vocab_size, out);
  return ok_status();
}

}  // namespace troupe
