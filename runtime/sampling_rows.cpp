// Building the device sampler's rows from samplers and recording its answers (see sampling_rows.h).
#include "runtime/sampling_rows.h"

#include "runtime/step_batch.h"

namespace troupe {

bool build_sampling_row(sampler& s, int64_t vocab, sampling_rows_out& out, smath::row_params& p) {
  if (s.constraint()) return false;
  const sampling_params& prm = s.params();
  const int32_t begin = out.used;
  bool ok = true;
  // The edit of token t, created on first use; null for ids outside the row or when out of room.
  auto edit_for = [&](int32_t t) -> smath::row_edit* {
    if (t < 0 || t >= vocab) return nullptr;
    int32_t& at = out.edit_of[static_cast<size_t>(t)];
    if (at < 0) {
      if (out.used == out.capacity) {
        ok = false;
        return nullptr;
      }
      at = out.used++;
      out.edits[at] = smath::row_edit{};
      out.edits[at].token = t;
    }
    return &out.edits[at];
  };
  for (const auto& [t, bias] : prm.logit_bias) {
    smath::row_edit* e = edit_for(t);
    if (!e) continue;
    if (e->bias != 0.0f && bias != 0.0f) ok = false;  // (l + a) + b is not l + (a + b): the CPU's
    e->bias += bias;
  }
  for (int32_t t : s.masked_now())
    if (smath::row_edit* e = edit_for(t)) e->masked = 1;
  if (prm.repetition_penalty != 1.0f) {
    for (const token_counts::entry& c : s.seen_tokens().entries())
      if (smath::row_edit* e = edit_for(c.token)) e->rep = prm.repetition_penalty;
  }
  const float f = prm.frequency_penalty, pr = prm.presence_penalty;
  if (f != 0.0f || pr != 0.0f) {
    for (const token_counts::entry& c : s.generated_counts().entries())
      if (smath::row_edit* e = edit_for(c.token)) e->sub = f * static_cast<float>(c.count) + pr;
  }
  for (int32_t i = begin; i < out.used; ++i) out.edit_of[static_cast<size_t>(out.edits[i].token)] = -1;
  if (!ok) {
    out.used = begin;
    return false;
  }
  p = smath::row_params{};
  p.temperature = prm.temperature;
  p.top_p = prm.top_p;
  p.min_p = prm.min_p;
  p.top_k = prm.top_k;
  p.logprobs = prm.logprobs;
  p.raw_logprobs = prm.lp_mode == logprobs_mode::raw ? 1 : 0;
  p.edit_begin = begin;
  p.edit_end = out.used;
  if (prm.temperature >= smath::kGreedyEps) p.uniform = s.next_uniform();
  return true;
}

sampled_seq finish_sampling_row(sampler& s, const smath::row_result& r, int32_t seq) {
  sampled_seq out;
  out.seq = seq;
  out.token.token = r.token;
  if (s.params().logprobs >= 0) {
    out.token.logprob = r.logprob;
    out.token.top.reserve(static_cast<size_t>(r.num_top));
    for (int32_t j = 0; j < r.num_top; ++j) out.token.top.push_back({r.top_token[j], r.top_logprob[j]});
  }
  s.record(r.token);
  return out;
}

}  // namespace troupe
