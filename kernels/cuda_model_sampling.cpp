// cuda_model::forward_sampled: a serving step's logits rows land in pinned host memory reused every
// step (one row per sampled sequence, at most max_batch_size) and the CPU sampler runs on them in
// place, so the reply carries tokens and nothing B x vocab leaves the executor.
// Design note: the CPU sampler is the reference for every knob the API accepts (logit_bias,
// min_tokens, penalties, constraints, logprobs, seeded draws); sampling here gives the CPU path's
// answers on the same logits. kernels/sampling.cu could replace it for the knobs it serves.
#include "kernels/cuda_model.h"

#include "runtime/step_sampling.h"

namespace troupe {

status cuda_model::forward_sampled(const step_batch& batch, step_logits& rows, step_logits& out) {
  bool pinned = host_logits_ != nullptr;
  int64_t num_rows = 0;
  for (const seq_step& s : batch.seqs) {
    if (s.want_all_logits || (s.want_logits && !samples_here(s))) pinned = false;  // rows go back
    if (s.want_logits) ++num_rows;
  }
  if (!pinned || num_rows > opts_.max_batch_size) return model_backend::forward_sampled(batch, rows, out);
  logits_dst_ = host_logits_;
  const status st = forward(batch, rows);  // rows.row_seq says whose row is where in host_logits_
  logits_dst_ = nullptr;
  TROUPE_TRY(st);
  out.prompt = std::move(rows.prompt);
  rows.prompt.clear();
  sample_rows(batch, rows.row_seq, host_logits_, cfg_.vocab_size, out);
  return ok_status();
}

}  // namespace troupe
