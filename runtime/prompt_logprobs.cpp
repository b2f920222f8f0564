// Prompt scoring helpers (see prompt_logprobs.h).
#include "runtime/prompt_logprobs.h"

#include "runtime/sampler.h"

namespace troupe {

token_logprobs score_row(std::span<const float> row, int32_t token, int32_t k) {
  const double lse = log_sum_exp(row);
  token_logprobs out;
  out.token = token;
  out.logprob = static_cast<float>(row[static_cast<size_t>(token)] - lse);
  for (const logprob_entry& e : top_logprobs(row, k, lse)) out.top.push_back({e.token, e.logprob});
  return out;
}

int32_t scored_token_after(const seq_step& s, size_t j) {
  if (j + 1 < s.tokens.size()) return s.tokens[j + 1];
  return s.next_token;
}

std::vector<scored_row> rows_to_score(const step_batch& batch) {
  std::vector<scored_row> rows;
  int64_t t = 0;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const seq_step& s = batch.seqs[i];
    if (s.prompt_logprobs >= 0) {
      for (size_t j = 0; j < s.tokens.size(); ++j) {
        const int32_t next = scored_token_after(s, j);
        if (next < 0) continue;
        rows.push_back({t + static_cast<int64_t>(j), static_cast<int32_t>(i),
                        s.start_pos + static_cast<int32_t>(j) + 1, next, s.prompt_logprobs});
      }
    }
    t += static_cast<int64_t>(s.tokens.size());
  }
  return rows;
}

}  // namespace troupe
