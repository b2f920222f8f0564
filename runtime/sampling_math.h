// The per-row sampling math shared by the CUDA sampling kernel (kernels/sampling.cu, one block per
// row) and its CPU check (tests/runtime/sampling_math_test.cpp): edits (logit_bias, the min_tokens
// mask, penalties), greedy argmax, log-softmax top-k, and temperature -> min_p -> top_k -> top_p -> one
// draw, written once against a "block" of cooperating threads (serial_block on the host).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__CUDACC__)
#define TROUPE_HD __host__ __device__
// The templates below run with a host block (serial_block) or a device-only one (the kernel's).
#define TROUPE_HD_TEMPLATE _Pragma("nv_exec_check_disable")
#else
#define TROUPE_HD
#define TROUPE_HD_TEMPLATE
#endif

namespace troupe::smath {

// Design note: the semantics are runtime/sampler.cpp's, step for step (see sampler.h): edits, then
// logprobs of the raw or processed row, then greedy (temperature < 1e-5, ties to the lowest id) or
// min_p (p >= min_p * p_max), top_k (the k best, ties to the lower id), top_p (keep a token while the
// mass strictly before it in best-first order is below top_p of the total) and a draw in id order
// (the first token whose cumulative weight exceeds u * total). The host draws u from the sequence's
// own generator (sampler::next_uniform), so a seeded device draw is the CPU draw on the same row,
// reproducible run to run and independent of the batch. Thresholds come from radix selects over
// order-preserving 32-bit keys (4 passes of 8 bits) plus one id-ordered scan for exact ties, so no
// row is sorted and nothing per token is stored: weights are recomputed from the logits each pass.
// Constrained decoding plugs in as one more edit pass (disallowed tokens -> -inf) before `process`.

constexpr float kGreedyEps = 1e-5f;  // sampler.cpp's: below it sampling is greedy
constexpr int32_t kMaxLogprobs = 20;  // validate_sampling_params' bound

struct row_params {
  float temperature = 1.0f;
  float top_p = 1.0f;
  float min_p = 0.0f;
  int32_t top_k = -1;           // <= 0 or >= vocab: off
  double uniform = 0.0;         // the draw's u in [0, 1) (sampler::next_uniform); unused when greedy
  int32_t logprobs = -1;        // -1: none; else the chosen token's logprob and this many alternatives
  int32_t raw_logprobs = 0;     // 1: logprobs of the row before the edits (lp_mode raw with edits)
  int32_t edit_begin = 0, edit_end = 0;  // this row's edits: edits[edit_begin, edit_end)
  int32_t skip = 0;             // 1: not sampled here (the host samples this row)
};

// One token the processing changes (unique per row): l = l + bias; masked: -inf; then the repetition
// penalty (rep != 1: l > 0 ? l / rep : l * rep); then l -= sub (frequency * count + presence).
struct row_edit {
  int32_t token = 0;
  float bias = 0.0f;
  float rep = 1.0f;
  float sub = 0.0f;
  int32_t masked = 0;
  float raw = 0.0f;  // written by apply_edits: the logit before the edit (raw logprobs)
};

struct row_result {
  int32_t token = 0;
  float logprob = 0.0f;
  int32_t num_top = 0;
  int32_t top_token[kMaxLogprobs] = {};
  float top_logprob[kMaxLogprobs] = {};
};

// Scratch a block shares (CUDA: __shared__; serial_block: a local).
struct row_shared {
  double hist[256];
  uint32_t digit;
  double above;
  int32_t pick;
};

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int32_t kNoPick = std::numeric_limits<int32_t>::max();

TROUPE_HD inline uint32_t float_bits(float v) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(v);
#else
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
#endif
}

TROUPE_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
#endif
}

// exp(x) for x <= 0, sampler.cpp's polynomial (Cephes' expf, rel. error < 1e-7); x below -87 gives
// exp(-87). The same weights as the CPU sampler's, bit for bit where neither compiler fuses.
TROUPE_HD inline float exp_nonpos(float x) {
  x = x > -87.0f ? x : -87.0f;
  const int n = static_cast<int>(x * 1.44269504f - 0.5f);
  const auto fn = static_cast<float>(n);
  const float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  return y * bits_float(static_cast<uint32_t>(n + 127) << 23);
}

TROUPE_HD inline float apply_edit(float l, const row_edit& e) {
  l += e.bias;
  if (e.masked) l = kNegInf;
  if (e.rep != 1.0f) l = l > 0.0f ? l / e.rep : l * e.rep;
  return l - e.sub;
}

// Best-first order: higher logit, then lower id. NaN is never better than anything.
TROUPE_HD inline bool better(float va, int32_t a, float vb, int32_t b) { return va > vb || (va == vb && a < b); }

// A key whose unsigned order is the float order (-0 and +0 share one key).
TROUPE_HD inline uint32_t order_key(float v) {
  const uint32_t u = float_bits(v == 0.0f ? 0.0f : v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

struct best_pair {
  float value = kNegInf;
  int32_t id = std::numeric_limits<int32_t>::max();
};

TROUPE_HD inline best_pair best_of(best_pair a, best_pair b) { return better(b.value, b.id, a.value, a.id) ? b : a; }

// One thread: the host's block. Block-wide calls return the same value to every thread.
struct serial_block {
  TROUPE_HD int tid() const { return 0; }
  TROUPE_HD int size() const { return 1; }
  TROUPE_HD void sync() {}
  TROUPE_HD float max(float v) { return v; }
  TROUPE_HD double sum(double v) { return v; }
  TROUPE_HD best_pair best(best_pair p) { return p; }
  TROUPE_HD void add(double* p, double v) { *p += v; }
  TROUPE_HD void set_min(int32_t* p, int32_t v) { *p = v < *p ? v : *p; }
  // Exclusive prefix over threads in tid order; *total gets the sum.
  TROUPE_HD double exclusive_scan(double v, double* total) {
    *total = v;
    return 0.0;
  }
  TROUPE_HD int32_t max_int(int32_t v) { return v; }
};

// Each thread owns a contiguous id range (the id-ordered scans need it).
TROUPE_HD inline void chunk_of(int tid, int size, int64_t n, int64_t* lo, int64_t* hi) {
  const int64_t chunk = (n + size - 1) / size;
  *lo = tid * chunk < n ? tid * chunk : n;
  *hi = *lo + chunk < n ? *lo + chunk : n;
}

TROUPE_HD_TEMPLATE
template <class B>
TROUPE_HD void apply_edits(B& b, float* row, int64_t vocab, row_edit* edits, int32_t n) {
  for (int32_t i = b.tid(); i < n; i += b.size()) {
    row_edit& e = edits[i];
    if (e.token < 0 || e.token >= vocab) continue;
    e.raw = row[e.token];
    row[e.token] = apply_edit(e.raw, e);
  }
  b.sync();
}

// Index of the best value (ties: lowest id); 0 when nothing compares (all NaN).
TROUPE_HD_TEMPLATE
template <class B>
TROUPE_HD int32_t argmax(B& b, const float* row, int64_t vocab) {
  best_pair p;
  for (int64_t i = b.tid(); i < vocab; i += b.size()) p = best_of(p, {row[i], static_cast<int32_t>(i)});
  p = b.best(p);
  return p.id == std::numeric_limits<int32_t>::max() ? 0 : p.id;
}

// log(sum(exp(row))) with sampler.cpp's exp; -inf for an all -inf row.
TROUPE_HD_TEMPLATE
template <class B>
TROUPE_HD double log_sum_exp(B& b, const float* row, int64_t vocab) {
  float mx = kNegInf;
  for (int64_t i = b.tid(); i < vocab; i += b.size()) mx = row[i] > mx ? row[i] : mx;
  mx = b.max(mx);
  if (mx == kNegInf) return -std::numeric_limits<double>::infinity();
  double s = 0.0;
  for (int64_t i = b.tid(); i < vocab; i += b.size()) s += exp_nonpos(row[i] - mx);
  return static_cast<double>(mx) + log(b.sum(s));
}

// The k best (token, logit - lse), best first (NaN never). One pass: each thread keeps its own k
// best, sorted; then k block-wide picks among the threads' heads.
TROUPE_HD_TEMPLATE
template <class B>
TROUPE_HD void top_logprobs(B& b, const float* row, int64_t vocab, int32_t k, double lse, row_result& out) {
  if (b.tid() == 0) out.num_top = 0;
  k = k < kMaxLogprobs ? k : kMaxLogprobs;
  if (k <= 0) return;
  float v[kMaxLogprobs];
  int32_t id[kMaxLogprobs];
  int32_t n = 0;
  for (int64_t i = b.tid(); i < vocab; i += b.size()) {
    const float x = row[i];
    const auto t = static_cast<int32_t>(i);
    if (x != x || (n == k && !better(x, t, v[k - 1], id[k - 1]))) continue;
    int32_t j = n < k ? n++ : k - 1;
    for (; j > 0 && better(x, t, v[j - 1], id[j - 1]); --j) v[j] = v[j - 1], id[j] = id[j - 1];
    v[j] = x, id[j] = t;
  }
  int32_t head = 0;
  for (int32_t j = 0; j < k; ++j) {
    best_pair mine;
    if (head < n) mine = {v[head], id[head]};
    const best_pair p = b.best(mine);
    if (p.id == std::numeric_limits<int32_t>::max()) break;
    if (head < n && id[head] == p.id) ++head;
    if (b.tid() == 0) {
      out.top_token[j] = p.id;
      out.top_logprob[j] = static_cast<float>(static_cast<double>(p.value) - lse);
      out.num_top = j + 1;
    }
  }
}

// A position in best-first order: tokens at least as good as (key, id) are kept.
struct cut {
  uint32_t key = 0;
  int32_t id = std::numeric_limits<int32_t>::max();  // the default keeps everything
  TROUPE_HD bool keeps(uint32_t k, int32_t i) const { return k > key || (k == key && i <= id); }
};

// The row's filters: the weight of token i after min_p and top_k (before top_p), and the final cut.
struct filter {
  const float* row = nullptr;
  float lmax = 0.0f, inv_t = 1.0f, thr = kNegInf;
  cut k_cut;   // top_k
  cut p_cut;   // top_p
  TROUPE_HD bool passes_k(int64_t i) const {  // weight_k(i) > 0, without the exp
    const float v = row[i];
    return v >= thr && k_cut.keeps(order_key(v), static_cast<int32_t>(i));
  }
  TROUPE_HD float weight_k(int64_t i) const { return passes_k(i) ? exp_nonpos((row[i] - lmax) * inv_t) : 0.0f; }
  TROUPE_HD float weight(int64_t i) const {
    return p_cut.keeps(order_key(row[i]), static_cast<int32_t>(i)) ? weight_k(i) : 0.0f;
  }
};

// The key K of the best-first position where the running measure (counts: 1 per token with
// weight_k > 0 when !mass; else weight_k) first reaches `target`; *above_out gets the measure of
// keys above K. Returns false when the whole row holds less than `target`.
TROUPE_HD_TEMPLATE
template <class B>
TROUPE_HD bool select_key(B& b, const filter& f, int64_t vocab, bool mass, double target, row_shared& sh,
                          uint32_t* key_out, double* above_out) {
  uint32_t prefix = 0, mask = 0;
  double above = 0.0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = b.tid(); i < 256; i += b.size()) sh.hist[i] = 0.0;
    b.sync();
    for (int64_t i = b.tid(); i < vocab; i += b.size()) {
      if (!f.passes_k(i)) continue;
      const uint32_t key = order_key(f.row[i]);
      if ((key & mask) != prefix) continue;
      b.add(&sh.hist[(key >> shift) & 255u], mass ? static_cast<double>(f.weight_k(i)) : 1.0);
    }
    b.sync();
    if (b.tid() == 0) {
      double cum = above;
      int d = 255;
      for (; d >= 0; --d) {
        if (cum + sh.hist[d] >= target) break;
        cum += sh.hist[d];
      }
      sh.digit = d < 0 ? 256u : static_cast<uint32_t>(d);
      sh.above = cum;
    }
    b.sync();
    const uint32_t digit = sh.digit;
    above = sh.above;
    b.sync();
    if (digit == 256u) return false;
    prefix |= digit << shift;
    mask |= 255u << shift;
  }
  *above_out = above;
  *key_out = prefix;
  return true;
}

// Among the tokens with key `key` (and weight_k > 0), in id order, the first whose running measure
// from `above` reaches `target`: the cut's id. Falls back to the last such token.
TROUPE_HD_TEMPLATE
template <class B>
TROUPE_HD int32_t tie_cut(B& b, const filter& f, int64_t vocab, bool mass, double above, double target, uint32_t key,
                          row_shared& sh) {
  int64_t lo, hi;
  chunk_of(b.tid(), b.size(), vocab, &lo, &hi);
  double local = 0.0;
  int32_t last = -1;
  for (int64_t i = lo; i < hi; ++i) {
    if (!f.passes_k(i) || order_key(f.row[i]) != key) continue;
    local += mass ? static_cast<double>(f.weight_k(i)) : 1.0;
    last = static_cast<int32_t>(i);
  }
  double total;
  double run = above + b.exclusive_scan(local, &total);
  if (b.tid() == 0) sh.pick = kNoPick;
  b.sync();
  if (local > 0.0 && run < target && run + local >= target) {
    int32_t id = last;  // rounding: the chunk's sum reached the target, its running sum did not
    for (int64_t i = lo; i < hi; ++i) {
      if (!f.passes_k(i) || order_key(f.row[i]) != key) continue;
      run += mass ? static_cast<double>(f.weight_k(i)) : 1.0;
      if (run >= target) {
        id = static_cast<int32_t>(i);
        break;
      }
    }
    b.set_min(&sh.pick, id);
  }
  b.sync();
  int32_t id = sh.pick;
  b.sync();
  if (id == kNoPick) id = b.max_int(last);  // the target sits past the ties (rounding): keep them all
  return id;
}

// Temperature, min_p, top_k and top_p as one filter over `row` (the processed row): token i keeps
// weight f.weight(i) (0: filtered out). f.lmax == -inf: nothing to draw from.
TROUPE_HD_TEMPLATE
template <class B>
TROUPE_HD filter make_filter(B& b, const float* row, int64_t vocab, const row_params& p, row_shared& sh) {
  filter f;
  f.row = row;
  float mx = kNegInf;
  for (int64_t i = b.tid(); i < vocab; i += b.size()) mx = row[i] > mx ? row[i] : mx;
  f.lmax = b.max(mx);
  if (f.lmax == kNegInf) return f;
  f.inv_t = 1.0f / p.temperature;
  f.thr = p.min_p > 0.0f ? f.lmax + p.temperature * logf(p.min_p) : kNegInf;
  f.thr = f.thr > std::numeric_limits<float>::lowest() ? f.thr : std::numeric_limits<float>::lowest();
  if (p.top_k > 0 && p.top_k < vocab) {
    // top_k is chosen on the logits alone (min_p applies to its survivors): select with weight_k
    // seeing no cut and no threshold.
    filter all = f;
    all.thr = std::numeric_limits<float>::lowest();
    uint32_t key;
    double above;
    if (select_key(b, all, vocab, false, p.top_k, sh, &key, &above)) {
      f.k_cut = {key, tie_cut(b, all, vocab, false, above, p.top_k, key, sh)};
    }
  }
  if (p.top_p < 1.0f) {
    double s = 0.0;
    for (int64_t i = b.tid(); i < vocab; i += b.size()) s += f.weight_k(i);
    const double keep_mass = static_cast<double>(p.top_p) * b.sum(s);
    uint32_t key;
    double above;
    if (select_key(b, f, vocab, true, keep_mass, sh, &key, &above)) {
      f.p_cut = {key, tie_cut(b, f, vocab, true, above, keep_mass, key, sh)};
    }
  }
  return f;
}

// make_filter, then one draw with u = p.uniform.
TROUPE_HD_TEMPLATE
template <class B>
TROUPE_HD int32_t sample_filtered(B& b, const float* row, int64_t vocab, const row_params& p, row_shared& sh) {
  const filter f = make_filter(b, row, vocab, p, sh);
  if (f.lmax == kNegInf) return argmax(b, row, vocab);
  // The draw: the first token in id order whose cumulative weight exceeds u * total.
  int64_t lo, hi;
  chunk_of(b.tid(), b.size(), vocab, &lo, &hi);
  double local = 0.0;
  int32_t last = -1;
  for (int64_t i = lo; i < hi; ++i) {
    const float w = f.weight(i);
    if (w > 0.0f) local += w, last = static_cast<int32_t>(i);
  }
  double total;
  double run = b.exclusive_scan(local, &total);
  const double target = p.uniform * total;
  if (b.tid() == 0) sh.pick = kNoPick;
  b.sync();
  if (local > 0.0 && run + local > target && run <= target) {
    int32_t id = last;  // rounding: the chunk's sum passed the target, its running sum did not
    for (int64_t i = lo; i < hi; ++i) {
      const float w = f.weight(i);
      if (w <= 0.0f) continue;
      run += w;
      if (run > target) {
        id = static_cast<int32_t>(i);
        break;
      }
    }
    b.set_min(&sh.pick, id);
  }
  b.sync();
  int32_t token = sh.pick;
  b.sync();
  if (token == kNoPick) token = -1;
  if (token < 0) token = b.max_int(last);  // rounding put the target past the end
  return token >= 0 ? token : argmax(b, row, vocab);
}

// One row end to end: edits, logprobs (raw or processed), greedy or the filtered draw. `row` is
// scratch (edited in place); `edits` get their raw values; thread 0 writes `out`.
TROUPE_HD_TEMPLATE
template <class B>
TROUPE_HD void process(B& b, float* row, int64_t vocab, const row_params& p, row_edit* edits, row_shared& sh,
                       row_result& out) {
  const int32_t num_edits = p.edit_end - p.edit_begin;
  row_edit* e = edits + p.edit_begin;
  const bool lp = p.logprobs >= 0;
  const bool raw = lp && p.raw_logprobs && num_edits > 0;
  double lse = 0.0;
  if (raw) {
    lse = log_sum_exp(b, row, vocab);
    top_logprobs(b, row, vocab, p.logprobs, lse, out);
  }
  apply_edits(b, row, vocab, e, num_edits);
  if (lp && !raw) {
    lse = log_sum_exp(b, row, vocab);
    top_logprobs(b, row, vocab, p.logprobs, lse, out);
  }
  const int32_t token =
      p.temperature < kGreedyEps ? argmax(b, row, vocab) : sample_filtered(b, row, vocab, p, sh);
  if (b.tid() != 0) return;
  out.token = token;
  if (!lp) return;
  float v = row[token];
  if (raw) {
    for (int32_t i = 0; i < num_edits; ++i)
      if (e[i].token == token) v = e[i].raw;
  }
  out.logprob = static_cast<float>(static_cast<double>(v) - lse);
}

}  // namespace troupe::smath
