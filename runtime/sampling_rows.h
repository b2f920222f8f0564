// The host half of sampling on the device: turns a sequence's sampler into the per-row knobs and
// token edits of runtime/sampling_math.h (the CUDA kernel's input), and records the token the
// device chose, so the sampler's state moves exactly as its own sample() would move it.
#pragma once

#include <cstdint>
#include <span>

#include "runtime/sampler.h"
#include "runtime/sampling_math.h"
#include "runtime/step_batch.h"

namespace troupe {

// Where the rows of one step put their edits: `edits` [capacity] (pinned memory on CUDA), `used`
// filled so far; `edit_of` [vocab] scratch, every entry -1 between calls.
struct sampling_rows_out {
  smath::row_edit* edits = nullptr;
  int32_t capacity = 0;
  int32_t used = 0;
  std::span<int32_t> edit_of;
};

// Appends `s`'s edits for this step (logit_bias, the min_tokens mask, the repetition, frequency and
// presence penalties: one merged edit per token) and fills `p`; draws the uniform of the step from
// `s`'s generator unless it is greedy. False, with nothing appended and `s` untouched, when the row
// needs the CPU sampler: a constraint (its mask is host state; see sampling_math.h), two nonzero
// biases for one token, or more edits than room.
bool build_sampling_row(sampler& s, int64_t vocab, sampling_rows_out& out, smath::row_params& p);

// The device chose `r` for the row `s` built: records the token (penalties, min_tokens) and
// returns the answer sample_row would have given.
sampled_seq finish_sampling_row(sampler& s, const smath::row_result& r, int32_t seq);

}  // namespace troupe
