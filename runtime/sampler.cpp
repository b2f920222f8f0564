// Per-request token sampling over a float32 logits row and the validation of sampling knobs
// (see sampler.h for the order of operations and the logprobs convention).
#include "runtime/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
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

// Largest value (NaN ignored; -inf for an empty or all-NaN row). Eight independent lanes so the
// compiler can overlap the compares instead of chaining one maxss per token.
float row_max(std::span<const float> l) {
  float lane[8];
  std::fill(std::begin(lane), std::end(lane), kNegInf);
  const size_t n8 = l.size() / 8 * 8;
  for (size_t i = 0; i < n8; i += 8) {
    for (size_t j = 0; j < 8; ++j) lane[j] = l[i + j] > lane[j] ? l[i + j] : lane[j];
  }
  float mx = kNegInf;
  for (float v : lane) mx = v > mx ? v : mx;
  for (size_t i = n8; i < l.size(); ++i) mx = l[i] > mx ? l[i] : mx;
  return mx;
}

// c ? a : b without a branch: keeps the row loops below vectorizable under strict IEEE flags
// (GCC will not if-convert a float compare that guards a value without -fno-trapping-math).
inline float pick(bool c, float a, float b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(a) & m) | (std::bit_cast<uint32_t>(b) & ~m));
}

// exp(x) for x <= 0 (arguments are l - lmax), relative error < 1e-7 (Cephes' expf polynomial);
// x below -87 (and -inf, NaN) gives exp(-87) ~ 1.6e-38. Plain float ops: loops over a row vectorize.
// The same polynomial as smath::exp_nonpos (runtime/sampling_math.h, shared with the CUDA kernels),
// kept apart on purpose: that portable form (ternary clamp, memcpy bit cast) does not vectorize here,
// and sampling a 49k row at temperature 0.8 / top_p 0.95 took 642 us instead of 307 with it.
inline float exp_nonpos(float x) {
  x = pick(x > -87.0f, x, -87.0f);
  const int n = static_cast<int>(x * 1.44269504f - 0.5f);  // round(x / ln 2), truncation toward 0
  const auto fn = static_cast<float>(n);
  const float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;  // x - n ln 2, two-part ln 2
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  return y * std::bit_cast<float>(static_cast<uint32_t>(n + 127) << 23);
}

// Sum of w[0..n) with eight float lanes (vectorizable), returned as a double.
double lane_sum(const float* w, size_t n) {
  float lane[8] = {};
  const size_t n8 = n / 8 * 8;
  for (size_t i = 0; i < n8; i += 8) {
    for (size_t j = 0; j < 8; ++j) lane[j] += w[i + j];
  }
  double sum = 0.0;
  for (float v : lane) sum += v;
  for (size_t i = n8; i < n; ++i) sum += w[i];
  return sum;
}

// Draws an index with probability w[i] / sum(w) for uniform u in [0, 1). Block sums first, then a
// scan inside one block: O(vocab) but mostly vectorized. Returns -1 when every weight is 0.
// `block_sum` is scratch, reused across calls.
int32_t draw_index(std::span<const float> w, double u, std::vector<double>& block_sum) {
  constexpr size_t kBlock = 512;
  const size_t num_blocks = (w.size() + kBlock - 1) / kBlock;
  block_sum.resize(num_blocks);
  double total = 0.0;
  for (size_t b = 0; b < num_blocks; ++b) {
    const size_t begin = b * kBlock;
    total += block_sum[b] = lane_sum(w.data() + begin, std::min(kBlock, w.size() - begin));
  }
  const double target = u * total;
  double cum = 0.0;
  int32_t last = -1;
  for (size_t b = 0; b < num_blocks; ++b) {
    if (block_sum[b] <= 0.0) continue;
    if (cum + block_sum[b] <= target && b + 1 < num_blocks) {
      cum += block_sum[b];
      continue;
    }
    const size_t end = std::min(w.size(), (b + 1) * kBlock);
    for (size_t i = b * kBlock; i < end; ++i) {
      if (w[i] <= 0.0f) continue;
      cum += w[i];
      last = static_cast<int32_t>(i);
      if (cum > target) return last;
    }
  }
  return last;  // rounding put the target past the end: the last token with any mass
}

// Index of the largest value, the lowest on ties (0 when nothing compares).
int32_t argmax(std::span<const float> l) {
  const float mx = row_max(l);
  for (size_t i = 0; i < l.size(); ++i) {
    if (l[i] == mx) return static_cast<int32_t>(i);
  }
  return 0;
}

// The best k tokens (any order) for small k: a heap of the best seen so far, worst on top, so most
// tokens cost one compare.
void best_k(std::span<const float> l, size_t k, std::vector<int32_t>& out) {
  const better cmp{l};
  out.clear();
  for (size_t i = 0; i < l.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (out.size() < k) {
      out.push_back(id);
      std::push_heap(out.begin(), out.end(), cmp);
    } else if (cmp(id, out.front())) {
      std::pop_heap(out.begin(), out.end(), cmp);
      out.back() = id;
      std::push_heap(out.begin(), out.end(), cmp);
    }
  }
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
  // 0 scores the prompt without generating (echo with max_tokens 0, prompt_logprobs).
  if (p.max_tokens < 0) return invalid("max_tokens must be >= 0, got " + std::to_string(p.max_tokens));
  if (p.prompt_logprobs < -1 || p.prompt_logprobs > 20) {
    return invalid("prompt_logprobs must be between 0 and 20, got " + std::to_string(p.prompt_logprobs));
  }
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
  const float mx = row_max(logits);
  if (mx == kNegInf) return -std::numeric_limits<double>::infinity();
  // Blocks of exponentials summed in lanes: vectorizable, and no [vocab] scratch.
  constexpr size_t kBlock = 256;
  float e[kBlock];
  double sum = 0.0;
  for (size_t begin = 0; begin < logits.size(); begin += kBlock) {
    const size_t n = std::min(kBlock, logits.size() - begin);
    for (size_t i = 0; i < n; ++i) e[i] = exp_nonpos(logits[begin + i] - mx);
    sum += lane_sum(e, n);
  }
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
  // Room for every token the sequence can see, up to a cap (distinct tokens saturate well below a
  // long max_tokens; beyond the cap the tables double, a few times at most).
  constexpr size_t cap = 4096;
  const size_t out = std::min<size_t>(cap, static_cast<size_t>(std::max(0, params.max_tokens)));
  if (params.repetition_penalty != 1.0f) {
    seen_.reserve(std::min(cap, prompt_ids.size() + out));
    for (int32_t t : prompt_ids) seen_.add(t);
  }
  if (params.frequency_penalty != 0.0f || params.presence_penalty != 0.0f) out_counts_.reserve(out);
}

bool sampler::modifies_row() const {
  return !params_.logit_bias.empty() || (num_generated_ < params_.min_tokens && !masked_until_min_.empty()) ||
         params_.repetition_penalty != 1.0f || params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
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
    for (const token_counts::entry& e : seen_.entries()) {
      const int32_t t = e.token;
      if (!in_vocab(t)) continue;
      float& v = l[static_cast<size_t>(t)];
      v = v > 0.0f ? v / r : v * r;
    }
  }
  const float f = params_.frequency_penalty, p = params_.presence_penalty;
  if (f != 0.0f || p != 0.0f) {
    for (const auto& [t, count] : out_counts_.entries()) {
      if (in_vocab(t)) l[static_cast<size_t>(t)] -= f * static_cast<float>(count) + p;
    }
  }
}

void sampler::set_constraint(std::unique_ptr<token_constraint> c, int32_t tokenizer_vocab) {
  constraint_ = std::move(c);
  tokenizer_vocab_ = tokenizer_vocab;
  constraint_blocked_ = false;
}

// Sets every token the constraint disallows to -inf; false when no finite logit is left. Tokens
// past the mask (a model vocabulary padded beyond the tokenizer's) are disallowed.
// Cost: one fill_mask plus a pass over the mask words; fully allowed words are skipped.
bool sampler::apply_constraint(std::span<float> l) {
  const int32_t vocab = std::max(static_cast<int32_t>(l.size()), tokenizer_vocab_);
  if (mask_.words.size() != (static_cast<size_t>(vocab) + 63) / 64) {
    mask_.resize(vocab);
  } else {
    mask_.clear();
  }
  constraint_->fill_mask(mask_);
  bool any = false;
  const size_t num_words = (l.size() + 63) / 64;  // bits past the row (tokenizer-only ids) are ignored
  for (size_t w = 0; w < num_words; ++w) {
    const uint64_t bits = mask_.words[w];
    const size_t begin = w * 64, end = std::min<size_t>(begin + 64, l.size());
    if (bits == ~uint64_t{0} && end - begin == 64) {
      for (size_t i = begin; i < end && !any; ++i) any = l[i] != kNegInf;
      continue;
    }
    for (size_t i = begin; i < end; ++i) {
      if ((bits >> (i - begin)) & 1) {
        any = any || l[i] != kNegInf;
      } else {
        l[i] = kNegInf;
      }
    }
  }
  return any;
}

sampled_token sampler::sample(std::span<float> logits) {
  sampled_token out;
  if (logits.empty()) return out;
  // A constraint that is complete (or found nothing allowed) allows nothing more: the sequence has
  // ended, and a step planned before its end was seen (async scheduling) drops this token.
  if (constraint_ && (constraint_blocked_ || constraint_->is_terminated())) {
    constraint_blocked_ = true;
    return out;
  }
  // Raw logprobs describe the model's row before bias and penalties: keep a copy only when
  // something would change it.
  const bool raw = params_.logprobs >= 0 && params_.lp_mode == logprobs_mode::raw && (modifies_row() || constraint_);
  if (raw) raw_.assign(logits.begin(), logits.end());
  apply_bias_and_penalties(logits);
  if (constraint_) {
    constraint_blocked_ = !apply_constraint(logits);
    if (constraint_blocked_) return out;  // nothing allowed: the caller stops the sequence
    // As vLLM: the grammar's mask comes before every logprobs mode (raw = masked, unbiased row).
    if (raw)
      for (size_t i = 0; i < raw_.size(); ++i)
        if (!mask_.test(static_cast<int32_t>(i))) raw_[i] = kNegInf;
  }
  const std::span<const float> l(logits.data(), logits.size());
  out.token = params_.temperature < kGreedyEps ? argmax(l) : sample_filtered(l);
  if (params_.logprobs >= 0) {
    const std::span<const float> src = raw ? std::span<const float>(raw_) : l;
    const double lse = log_sum_exp(src);
    out.logprob = static_cast<float>(src[static_cast<size_t>(out.token)] - lse);
    out.top = top_logprobs(src, params_.logprobs, lse);
    // Fewer allowed tokens than asked for: masked ones are not alternatives (nor valid output).
    if (constraint_) std::erase_if(out.top, [&](const logprob_entry& e) { return std::isinf(l[static_cast<size_t>(e.token)]); });
  }
  if (constraint_ && !constraint_->accept(out.token)) constraint_blocked_ = true;  // a matcher bug: stop
  record(out.token);
  return out;
}

void sampler::record(int32_t token) {
  ++num_generated_;
  if (params_.repetition_penalty != 1.0f) seen_.add(token);
  if (params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f) out_counts_.add(token);
}

// Temperature, min_p, top_k, top_p, then one draw. `l` is the processed row [vocab].
// Design note: every filter becomes a zeroed weight in weight_ [vocab] (the unnormalized
// probability exp((l - lmax) / t)), so the draw is one blocked scan in id order. top_k selects its
// k tokens on the logits first. top_p avoids sorting the row: candidates are bucketed by
// (lmax - l) / t, a monotone key, and only the bucket where the cumulative mass crosses top_p is
// sorted. The kept set is the same as a full sort's (best first, ties to the lower id).
int32_t sampler::sample_filtered(std::span<const float> l) {
  const size_t vocab = l.size();
  const float lmax = row_max(l);
  if (lmax == kNegInf) return argmax(l);  // everything masked: nothing sensible to draw
  const float inv_t = 1.0f / params_.temperature;
  const better cmp{l};
  // min_p: p / p_max >= min_p  <=>  l >= lmax + t * log(min_p). -inf (masked) never passes.
  float thr = params_.min_p > 0.0f ? lmax + params_.temperature * std::log(params_.min_p) : kNegInf;
  thr = std::max(thr, std::numeric_limits<float>::lowest());
  weight_.resize(vocab);
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab) {
    // top_k first, on the logits, so only its k survivors pay for an exp; min_p then applies to them.
    const auto k = static_cast<size_t>(params_.top_k);
    if (k <= 1024) {
      best_k(l, k, cand_);
    } else {
      cand_.resize(vocab);
      std::iota(cand_.begin(), cand_.end(), 0);
      std::nth_element(cand_.begin(), cand_.begin() + static_cast<long>(k - 1), cand_.end(), cmp);
      cand_.resize(k);
    }
    std::fill(weight_.begin(), weight_.end(), 0.0f);
    for (int32_t id : cand_) {
      const float v = l[static_cast<size_t>(id)];
      if (v >= thr) weight_[static_cast<size_t>(id)] = exp_nonpos((v - lmax) * inv_t);
    }
  } else {
    for (size_t i = 0; i < vocab; ++i) weight_[i] = pick(l[i] >= thr, exp_nonpos((l[i] - lmax) * inv_t), 0.0f);
  }
  // Keeps tokens at least as good as `cut` (in the `better` order).
  auto keep_up_to = [&](int32_t cut) {
    const float lc = l[static_cast<size_t>(cut)];
    const auto ic = static_cast<size_t>(cut);
    for (size_t i = 0; i < vocab; ++i) {
      weight_[i] = pick((l[i] > lc) | ((l[i] == lc) & (i <= ic)), weight_[i], 0.0f);
    }
  };
  if (params_.top_p < 1.0f) {
    const double total = lane_sum(weight_.data(), vocab);
    const double keep_mass = static_cast<double>(params_.top_p) * total;
    // Candidates: tokens with weight >= tau for the largest tau whose tokens already hold top_p of
    // the mass (weights are <= 1: the best token has weight 1). Every kept token is among them: a
    // lighter token comes after all of them in the order, with at least keep_mass before it.
    float tau = 0.0f;
    for (float t : {1e-4f, 1e-8f}) {
      float above[8] = {};
      for (size_t i = 0; i < vocab; i += 8) {
        for (size_t j = 0; j < 8 && i + j < vocab; ++j) above[j] += pick(weight_[i + j] >= t, weight_[i + j], 0.0f);
      }
      if (lane_sum(above, 8) >= keep_mass) {
        tau = t;
        break;
      }
    }
    cand_.clear();
    for (size_t i = 0; i < vocab; ++i) {
      if (weight_[i] > 0.0f && weight_[i] >= tau) cand_.push_back(static_cast<int32_t>(i));
    }
    // Bucket the candidates by (lmax - l) / t, a monotone key; bucket masses find the bucket where
    // the cumulative mass crosses top_p; only that bucket is sorted.
    constexpr int kBuckets = 2048;
    constexpr float kMaxDist = 32.0f;  // exp(-32) ~ 1e-14: everything further shares the last bucket
    auto bucket_of = [&](int32_t id) {
      const float d = (lmax - l[static_cast<size_t>(id)]) * inv_t * (kBuckets / kMaxDist);
      return d >= kBuckets - 1 ? kBuckets - 1 : static_cast<int>(d);
    };
    std::vector<double>& mass = mass_;
    mass.assign(kBuckets, 0.0);
    for (int32_t id : cand_) mass[static_cast<size_t>(bucket_of(id))] += weight_[static_cast<size_t>(id)];
    double before = 0.0;  // mass of all buckets better than `b`
    int b = 0;
    while (b < kBuckets - 1 && before + mass[static_cast<size_t>(b)] < keep_mass) {
      before += mass[static_cast<size_t>(b++)];
    }
    std::erase_if(cand_, [&](int32_t id) { return bucket_of(id) != b; });
    std::sort(cand_.begin(), cand_.end(), cmp);
    // Keep a token while the mass strictly before it is below top_p (at least one is kept).
    size_t kept = 0;
    while (kept < cand_.size() && (kept == 0 || before < keep_mass)) {
      before += weight_[static_cast<size_t>(cand_[kept++])];
    }
    if (kept > 0) keep_up_to(cand_[kept - 1]);
  }
  const int32_t token = draw_index(weight_, uniform01(), block_sum_);
  return token >= 0 ? token : argmax(l);
}

}  // namespace troupe
