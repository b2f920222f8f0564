// Sampling one token from a float32 logits row, per request: logit bias, penalties, greedy or
// temperature + min_p + top_k + top_p sampling with a per-request RNG, and logprobs. Also
// validate_sampling_params, the one place request knobs are checked. Pure C++ (the CPU path and the
// reference for the CUDA sampling kernels).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/error.h"
#include "config/sampling_params.h"
#include "runtime/token_constraint.h"
#include "runtime/token_counts.h"

namespace troupe {

// Checks every knob against its range, naming the knob and the bad value (errc::invalid_argument).
status validate_sampling_params(const sampling_params& p, int64_t vocab_size);

struct logprob_entry {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct sampled_token {
  int32_t token = 0;
  float logprob = 0.0f;            // log-softmax per params.lp_mode (see sampler); 0 if not asked
  std::vector<logprob_entry> top;  // [params.logprobs] most likely, best first (ties: lower id)
};

// Design note: the order of operations is vLLM v1's:
//   1. logit_bias (and, while fewer than min_tokens tokens exist, EOS/stop_token_ids masked to -inf);
//   2. penalties: repetition over prompt + generated tokens (positive logits divided, negative ones
//      multiplied), then frequency and presence over generated tokens only (OpenAI: l -= f * count +
//      p * (count > 0));
//   2b. a structured-output constraint, if any: tokens it disallows become -inf (so bias and
//      penalties compose with it, and greedy and stochastic sampling alike only see allowed tokens);
//   3. logprobs, if asked, from a log-softmax before temperature and filtering (they never depend
//      on top_k/top_p): params.lp_mode raw (the default, as vLLM) takes the model's row before step
//      1 but with step 2b's mask (as vLLM, whose grammar mask precedes every logprobs mode),
//      processed takes it after steps 1-2b (the distribution greedy decoding follows); top
//      alternatives a constraint disallows are left out;
//   4. temperature == 0: greedy argmax (ties: lowest id). Otherwise temperature, then min_p (relative
//      to the most likely token), then top_k, then top_p over what is left, then one draw.
// Costs: a few vectorized O(vocab) passes (a polynomial exp, rel. error < 1e-7); top_k selects with a
// k-heap (nth_element above k = 1024) before any exp; top_p buckets tokens by probability and sorts
// only the bucket where the cumulative mass crosses top_p (no full sort of the vocabulary).
//
// Mutation contract: sample() is the only mutating call; it records the token it returns as
// generated (for the penalties and min_tokens) and advances the RNG. One sampler per sequence.
class sampler {
 public:
  // `prompt_ids`: the prompt (for the repetition penalty). `eos_ids`: masked with stop_token_ids
  // while fewer than params.min_tokens tokens are generated (unless ignore_eos). Without a seed the
  // RNG is seeded from std::random_device.
  sampler(const sampling_params& params, std::span<const int32_t> prompt_ids,
          std::span<const int32_t> eos_ids = {});

  // Samples the next token from `logits` [vocab]. The row is scratch: bias and penalties are
  // applied in place.
  sampled_token sample(std::span<float> logits);

  // Constrains every later sample() to the tokens `c` allows (step 2b), then advances `c` past the
  // sampled token. Null: unconstrained. `tokenizer_vocab`: the vocabulary the matcher sets bits
  // in, when it may exceed the logits row (the mask is sized to the larger of the two).
  void set_constraint(std::unique_ptr<token_constraint> c, int32_t tokenizer_vocab = 0);
  const token_constraint* constraint() const { return constraint_.get(); }
  // The constraint is complete and nothing may follow the last sampled token: stop the sequence.
  bool constraint_terminated() const { return constraint_ && constraint_->is_terminated(); }
  // The last sample() found no token the constraint allows (or the allowed ones all masked, e.g.
  // EOS before min_tokens): its token means nothing and the sequence must stop without it.
  bool constraint_blocked() const { return constraint_blocked_; }

  int32_t num_generated() const { return num_generated_; }
  uint64_t seed() const { return seed_; }

  // For a sampler elsewhere (the CUDA kernels, via runtime/sampling_rows.h) that samples this
  // sequence's row with the same semantics: the knobs, the state steps 1-2 read, the uniform the
  // draw of sample() would use (advances the RNG), and record(), sample()'s bookkeeping for the
  // token it chose.
  const sampling_params& params() const { return params_; }
  bool modifies_row() const;  // would step 1 or 2 change the row now?
  std::span<const int32_t> masked_now() const {  // EOS/stop ids masked at this step (min_tokens)
    return num_generated_ < params_.min_tokens ? std::span<const int32_t>(masked_until_min_) : std::span<const int32_t>();
  }
  const token_counts& seen_tokens() const { return seen_; }      // prompt + generated (repetition)
  const token_counts& generated_counts() const { return out_counts_; }  // frequency / presence
  double next_uniform() { return uniform01(); }
  void record(int32_t token);

 private:
  void apply_bias_and_penalties(std::span<float> logits) const;
  bool apply_constraint(std::span<float> logits);
  int32_t sample_filtered(std::span<const float> logits);
  double uniform01();

  sampling_params params_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::vector<int32_t> masked_until_min_;           // EOS + stop_token_ids
  // Sized at construction for the prompt and max_tokens (capped): a token seen for the first time
  // allocates nothing in steady decode.
  token_counts seen_;        // prompt + generated (repetition penalty)
  token_counts out_counts_;  // generated token -> count (frequency and presence penalties)
  int32_t num_generated_ = 0;
  std::vector<int32_t> cand_;  // [vocab] scratch: candidate ids
  std::vector<float> weight_;  // [vocab] scratch: unnormalized probabilities
  std::vector<float> raw_;     // [vocab] scratch: the row before bias and penalties (raw logprobs)
  std::vector<double> block_sum_;  // [vocab / 512] scratch: the draw's block sums
  std::vector<double> mass_;       // [2048] scratch: top_p's bucket masses
  std::unique_ptr<token_constraint> constraint_;
  token_mask mask_;  // [max(vocab, tokenizer_vocab_) bits] reused across steps
  int32_t tokenizer_vocab_ = 0;
  bool constraint_blocked_ = false;
};

// Log-softmax helpers, exposed for tests and the CUDA reference.
// Returns log(sum(exp(logits))) computed stably.
double log_sum_exp(std::span<const float> logits);
// The k largest logits [k] as (token, logit - lse), best first, ties to the lower id.
std::vector<logprob_entry> top_logprobs(std::span<const float> logits, int32_t k, double lse);

}  // namespace troupe
