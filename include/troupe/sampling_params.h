// What a request asks of generation: the sampling knobs of the OpenAI API and vLLM, stop rules and
// logprobs. Plain data; validated by validate_sampling_params (sampler.h) with clear messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace troupe {

// Which distribution logprobs describe (vLLM's --logprobs-mode): the model's own (raw, before
// logit_bias, penalties and the min_tokens mask; the default) or the one sampled from (processed).
enum class logprobs_mode : uint8_t { raw = 0, processed = 1 };

struct sampling_params {
  float temperature = 1.0f;         // 0 = greedy
  float top_p = 1.0f;               // (0, 1]
  int32_t top_k = -1;               // -1 or 0 = off
  float min_p = 0.0f;               // [0, 1]
  float repetition_penalty = 1.0f;  // > 0; 1 = off (divides positive logits of seen tokens)
  float presence_penalty = 0.0f;    // [-2, 2]
  float frequency_penalty = 0.0f;   // [-2, 2]
  std::optional<uint64_t> seed;     // same seed => same output
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> bias added to the logit
  int32_t logprobs = -1;            // -1 = none; k >= 0: chosen token's logprob + top k
  int32_t max_tokens = 16;          // tokens to generate at most; 0: score the prompt only
  int32_t min_tokens = 0;           // EOS/stop ignored before this many tokens
  bool ignore_eos = false;
  std::vector<std::string> stop;          // stop strings (not included in the output)
  std::vector<int32_t> stop_token_ids;    // extra stop tokens (included as finish_reason=stop)
  int32_t prompt_logprobs = -1;     // -1 = none; k >= 0: each prompt token's logprob + top k (vLLM)
  logprobs_mode lp_mode = logprobs_mode::raw;
};

}  // namespace troupe
