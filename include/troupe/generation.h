// What a generation request is and what comes back from it: plain data shared by the scheduling
// core (runtime/), the actors, the engine facade and the listener.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "troupe/constraint_spec.h"
#include "troupe/sampling_params.h"

namespace troupe {

class compiled_constraint;  // runtime/token_constraint.h

enum class finish_reason : uint8_t { none = 0, stop = 1, length = 2, cancelled = 3, error = 4 };
const char* finish_reason_name(finish_reason r);  // "stop", "length", ...

struct generation_request {
  std::string request_id;           // unique per engine; the engine makes one if empty
  std::vector<int32_t> prompt_ids;  // already tokenized (chat template applied by the caller)
  sampling_params params;
  int32_t n = 1;                    // independent choices sharing the prompt's KV blocks
  constraint_spec constraint;       // structured output asked for (none: free text)
  // `constraint` compiled for this process's tokenizer by the listener, so the scheduler never
  // compiles on its thread. Not serialized: a remote node compiles the spec itself.
  std::shared_ptr<const compiled_constraint> compiled;
};

struct top_logprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct token_logprobs {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<top_logprob> top;  // k most likely, best first (k = params.logprobs)
};

struct usage_info {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache
};

struct generation_event {
  std::string request_id;
  int32_t index = 0;                  // which choice (0..n-1)
  std::vector<int32_t> token_ids;     // tokens sampled since the previous event of this choice
  std::string text;                   // their text; complete UTF-8; stop strings held back/cut
  std::vector<token_logprobs> logprobs;  // params.logprobs >= 0: one per token whose text is (partly)
                                         // in `text` of this or an earlier event (never EOS/stop ids)
  finish_reason finish = finish_reason::none;  // != none: last event of this choice
  usage_info usage;                   // filled on each choice's final event (whole request)
  double queue_time_s = 0.0;          // time spent waiting for admission (first event)
  std::vector<token_logprobs> prompt_logprobs;  // params.prompt_logprobs >= 0, each choice's first event:
                                                // prompt tokens 1..P-1 (token 0 has none)
};

}  // namespace troupe
