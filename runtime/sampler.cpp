// Per-request token sampling over a float32 logits row and the validation of sampling knobs
// (see sampler.h for the order of operations and the logprobs convention).
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <string>

namespace troupe {

namespace {

// Below this temperature sampling is greedy (vLLM's _SAMPLING_EPS): dividing by ~0 only overflows.
constexpr float kGreedyEps = 1e-5f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

error invalid(const std::string& msg) { return make_error(errc::invalid_argument, msg); }

std::string num(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  return s;
}

// Best first: higher logit, then lower id.
struct better {
  std::span<const float> l;
  bool operator()(int32_t a, int32_t b) const { return l[a] > l[b] || (l[a] == l[b] && a < b); }
};

int32_t argmax(std::span<const float> l) {
  int32_t best = 0;
  for (size_t i = 1; i < l.size(); ++i) {
    if (l[i] > l[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

}  // namespace

status validate_sampling_params(const sampling_params& p, int64_t vocab_size) {
  if (std::isnan(p.temperature) || p.temperature < 0.0f || std::isinf(p.temperature)) {
    return invalid("temperature must be a finite number >= 0, got " + num(p.temperature));
  }
  if (std::isnan(p.top_p) || p.top_p <= 0.0f || p.top_p > 1.0f) {
    return invalid("top_p must be in (0, 1], got " + num(p.top_p));
  }
  if (p.top_k < -1) {
    return invalid("top_k must be -1 (off), 0 (off) or a positive count, got " + std::to_string(p.top_k));
  }
  if (std::isnan(p.min_p) || p.min_p < 0.0f || p.min_p > 1.0f) {
    return invalid("min_p must be in [0, 1], got " + num(p.min_p));
  }
  if (!std::isfinite(p.repetition_penalty) || p.repetition_penalty <= 0.0f) {
    return invalid("repetition_penalty must be > 0, got " + num(p.repetition_penalty));
  }
  if (std::isnan(p.presence_penalty) || p.presence_penalty < -2.0f || p.presence_penalty > 2.0f) {
    return invalid("presence_penalty must be in [-2, 2], got " + num(p.presence_penalty));
  }
  if (std::isnan(p.frequency_penalty) || p.frequency_penalty < -2.0f || p.frequency_penalty > 2.0f) {
    return invalid("frequency_penalty must be in [-2, 2], got " + num(p.frequency_penalty));
  }
  for (const auto& [token, bias] : p.logit_bias) {
    if (token < 0 || token >= vocab_size) {
      return invalid("logit_bias token " + std::to_string(token) + " is outside the vocabulary [0, " +
                     std::to_string(vocab_size) + ")");
    }
    if (std::isnan(bias) || bias < -100.0f || bias > 100.0f) {
      return invalid("logit_bias for token " + std::to_string(token) + " must be in [-100, 100], got " +
                     num(bias));
    }
  }
  if (p.logprobs < -1 || p.logprobs > 20) {
    return invalid("logprobs must be between 0 and 20, got " + std::to_string(p.logprobs));
  }
  if (p.max_tokens < 1) return invalid("max_tokens must be >= 1, got " + std::to_string(p.max_tokens));
  if (p.min_tokens < 0 || p.min_tokens > p.max_tokens) {
    return invalid("min_tokens must be in [0, max_tokens=" + std::to_string(p.max_tokens) + "], got " +
                   std::to_string(p.min_tokens));
  }
  for (const auto& s : p.stop) {
    if (s.empty()) return invalid("stop strings must not be empty");
  }
  for (int32_t t : p.stop_token_ids) {
    if (t < 0 || t >= vocab_size) {
      return invalid("stop_token_ids entry " + std::to_string(t) + " is outside the vocabulary [0, " +
                     std::to_string(vocab_size) + ")");
    }
  }
  return ok_status();
}

double log_sum_exp(std::span<const float> logits) {
  float mx = kNegInf;
  for (float v : logits) mx = std::max(mx, v);
  if (mx == kNegInf) return -std::numeric_limits<double>::infinity();
  double sum = 0.0;
  for (float v : logits) sum += std::exp(v - mx);
  return static_cast<double>(mx) + std::log(sum);
}

std::vector<logprob_entry> top_logprobs(std::span<const float> logits, int32_t k, double lse) {
  std::vector<logprob_entry> out;
  if (k <= 0 || logits.empty()) return out;
  const auto kk = static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(logits.size())));
  // A heap of the kk best seen so far with the worst on top: O(vocab) compares for small kk.
  better cmp{logits};
  std::priority_queue<int32_t, std::vector<int32_t>, better> heap(cmp);
  for (size_t i = 0; i < logits.size(); ++i) {
    auto id = static_cast<int32_t>(i);
    if (heap.size() < kk) {
      heap.push(id);
    } else if (cmp(id, heap.top())) {
      heap.pop();
      heap.push(id);
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(kk);
  while (!heap.empty()) {
    ids.push_back(heap.top());
    heap.pop();
  }
  std::reverse(ids.begin(), ids.end());
  out.reserve(kk);
  for (int32_t id : ids) out.push_back({id, static_cast<float>(logits[static_cast<size_t>(id)] - lse)});
  return out;
}

sampler::sampler(const sampling_params& params, std::span<const int32_t> prompt_ids,
                 std::span<const int32_t> eos_ids)
    : params_(params) {
  seed_ = params.seed ? *params.seed
                      : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  rng_.seed(seed_);
  if (params.min_tokens > 0) {
    masked_until_min_ = params.stop_token_ids;
    if (!params.ignore_eos) masked_until_min_.insert(masked_until_min_.end(), eos_ids.begin(), eos_ids.end());
  }
  if (params.repetition_penalty != 1.0f) seen_.insert(prompt_ids.begin(), prompt_ids.end());
}

double sampler::uniform01() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

void sampler::apply_bias_and_penalties(std::span<float> l) const {
  const auto vocab = static_cast<int64_t>(l.size());
  auto in_vocab = [vocab](int32_t t) { return t >= 0 && t < vocab; };
  for (const auto& [token, bias] : params_.logit_bias) {
    if (in_vocab(token)) l[static_cast<size_t>(token)] += bias;
  }
  if (num_generated_ < params_.min_tokens) {
    for (int32_t t : masked_until_min_) {
      if (in_vocab(t)) l[static_cast<size_t>(t)] = kNegInf;
    }
  }
  const float r = params_.repetition_penalty;
  if (r != 1.0f) {
    for (int32_t t : seen_) {
      if (!in_vocab(t)) continue;
      float& v = l[static_cast<size_t>(t)];
      v = v > 0.0f ? v / r : v * r;
    }
  }
  const float f = params_.frequency_penalty, p = params_.presence_penalty;
  if (f != 0.0f || p != 0.0f) {
    for (const auto& [t, count] : out_counts_) {
      if (in_vocab(t)) l[static_cast<size_t>(t)] -= f * static_cast<float>(count) + p;
    }
  }
}

sampled_token sampler::sample(std::span<float> logits) {
  sampled_token out;
  if (logits.empty()) return out;
  apply_bias_and_penalties(logits);
  const std::span<const float> l(logits.data(), logits.size());
  out.token = params_.temperature < kGreedyEps ? argmax(l) : sample_filtered(l);
  if (params_.logprobs >= 0) {
    const double lse = log_sum_exp(l);
    out.logprob = static_cast<float>(l[static_cast<size_t>(out.token)] - lse);
    out.top = top_logprobs(l, params_.logprobs, lse);
  }
  ++num_generated_;
  if (params_.repetition_penalty != 1.0f) seen_.insert(out.token);
  if (params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f) ++out_counts_[out.token];
  return out;
}

// Temperature, min_p, top_k, top_p, then one draw. `l` is the processed row [vocab].
int32_t sampler::sample_filtered(std::span<const float> l) {
  const size_t vocab = l.size();
  float lmax = kNegInf;
  for (float v : l) lmax = std::max(lmax, v);
  if (lmax == kNegInf) return argmax(l);  // everything masked: nothing sensible to draw
  const float inv_t = 1.0f / params_.temperature;
  const bool use_top_k = params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab;
  const bool use_top_p = params_.top_p < 1.0f;
  const bool use_min_p = params_.min_p > 0.0f;

  cand_.clear();
  weight_.clear();
  if (!use_top_k && !use_top_p && !use_min_p) {
    // The common fast path: one pass of exp over the whole row, one draw.
    weight_.resize(vocab);
    double sum = 0.0;
    for (size_t i = 0; i < vocab; ++i) sum += weight_[i] = std::exp((l[i] - lmax) * inv_t);
    const double target = uniform01() * sum;
    double cum = 0.0;
    int32_t last = argmax(l);
    for (size_t i = 0; i < vocab; ++i) {
      if (weight_[i] <= 0.0f) continue;
      cum += weight_[i];
      last = static_cast<int32_t>(i);
      if (cum > target) return last;
    }
    return last;  // rounding: the last token with any mass
  }

  // min_p: p / p_max >= min_p  <=>  (l - lmax) / t >= log(min_p).
  const float thr = use_min_p ? lmax + params_.temperature * std::log(params_.min_p) : kNegInf;
  cand_.reserve(vocab);
  for (size_t i = 0; i < vocab; ++i) {
    if (l[i] >= thr && l[i] > kNegInf) cand_.push_back(static_cast<int32_t>(i));
  }
  const better cmp{l};
  bool sorted = false;
  if (use_top_k && cand_.size() > static_cast<size_t>(params_.top_k)) {
    const auto k = static_cast<size_t>(params_.top_k);
    std::nth_element(cand_.begin(), cand_.begin() + static_cast<long>(k - 1), cand_.end(), cmp);
    cand_.resize(k);
  }
  if (use_top_k) {
    std::sort(cand_.begin(), cand_.end(), cmp);  // k is small; also makes the draw order canonical
    sorted = true;
  }
  auto w = [&](int32_t id) { return std::exp((l[static_cast<size_t>(id)] - lmax) * inv_t); };
  if (use_top_p) {
    double total = 0.0;
    for (int32_t id : cand_) total += w(id);
    const double keep_mass = static_cast<double>(params_.top_p) * total;
    // Sort a growing head until it holds top_p of the mass: a full sort only for flat rows.
    size_t head = 0, kept = 0;
    double cum = 0.0;
    while (true) {
      const size_t next = sorted ? cand_.size() : std::min(cand_.size(), std::max<size_t>(64, head * 4));
      if (!sorted) {
        auto first = cand_.begin() + static_cast<long>(head);
        if (next < cand_.size()) std::nth_element(first, cand_.begin() + static_cast<long>(next), cand_.end(), cmp);
        std::sort(first, cand_.begin() + static_cast<long>(next), cmp);
      }
      // Keep a token while the mass strictly before it is below top_p (at least one is kept).
      for (; kept < next && (kept == 0 || cum < keep_mass); ++kept) cum += w(cand_[kept]);
      if (cum >= keep_mass || next == cand_.size()) break;
      head = next;
    }
    cand_.resize(kept);
  }
  double sum = 0.0;
  weight_.resize(cand_.size());
  for (size_t j = 0; j < cand_.size(); ++j) sum += weight_[j] = w(cand_[j]);
  const double target = uniform01() * sum;
  double cum = 0.0;
  for (size_t j = 0; j < cand_.size(); ++j) {
    cum += weight_[j];
    if (cum > target) return cand_[j];
  }
  return cand_.empty() ? argmax(l) : cand_.back();
}

}  // namespace troupe
