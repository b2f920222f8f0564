// Sampling where the logits are: the executor's half of a serving step. Every row whose sequence
// carries its sampler (seq_step::sampling) is sampled in place and answered as a sampled_seq; the
// other rows are answered as rows. Also the default model_backend::forward_sampled.
#pragma once

#include <cstdint>
#include <span>

#include "runtime/step_batch.h"

namespace troupe {

// Does the executor sample `s`'s row? (It has a sampler and asks for exactly one row.)
inline bool samples_here(const seq_step& s) { return s.sampling && s.want_logits && !s.want_all_logits; }

// Samples `row` [vocab] with `smp` for batch entry `seq`. The row is scratch (bias, penalties and the
// constraint's mask are applied in place). Allocates only for the top logprobs a sequence asked for.
sampled_seq sample_row(sampler& smp, std::span<float> row, int32_t seq);

// The backend computed rows [num_rows, vocab] for `batch` (row i belongs to seqs[row_seq[i]]):
// rows of sequences that samples_here() are sampled in place into out.sampled (in seq order); the
// others are appended to out.row_seq / out.data. Sets out.vocab_size.
void sample_rows(const step_batch& batch, std::span<const int32_t> row_seq, float* rows, int64_t vocab,
                 step_logits& out);

}  // namespace troupe
