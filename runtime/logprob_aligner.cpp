// Token logprobs released in step with the returned text (see logprob_aligner.h).
#include "runtime/logprob_aligner.h"

namespace troupe {

void logprob_aligner::add(token_logprobs lp, int64_t decoded_before) {
  pending_.push_back({std::move(lp), decoded_before});
}

std::vector<token_logprobs> logprob_aligner::release(int64_t returned) {
  std::vector<token_logprobs> out;
  while (!pending_.empty() && pending_.front().offset < returned) {
    out.push_back(std::move(pending_.front().lp));
    pending_.pop_front();
  }
  return out;
}

std::vector<token_logprobs> logprob_aligner::finish(int64_t returned, bool stopped_by_string) {
  std::vector<token_logprobs> out = release(returned);
  if (!stopped_by_string) {
    for (pending& p : pending_) out.push_back(std::move(p.lp));
  }
  pending_.clear();
  return out;
}

}  // namespace troupe
