// The device sampler's math (runtime/sampling_math.h, run here by one host "thread") against the
// CPU sampler: over random rows and knobs, the same tokens (greedy and seeded draws), logprobs and
// penalty state; and its filters against a textbook sort-based reference (kept set, probabilities).
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/sampling_math.h"
#include "runtime/sampling_rows.h"
#include "runtime/step_batch.h"

namespace troupe {
namespace {

// Random logits; `ties` rounds them to quarters so equal logits meet at every cut.
std::vector<float> random_row(std::mt19937_64& rng, int64_t vocab, bool ties) {
  std::normal_distribution<float> n(0.0f, 3.0f);
  std::vector<float> row(static_cast<size_t>(vocab));
  for (float& v : row) v = ties ? std::round(n(rng) * 4.0f) / 4.0f : n(rng);
  return row;
}

sampling_params random_params(std::mt19937_64& rng, int64_t vocab) {
  auto pick = [&](auto... v) {
    using T = std::common_type_t<decltype(v)...>;
    const T all[] = {static_cast<T>(v)...};
    return all[rng() % sizeof...(v)];
  };
  sampling_params p;
  p.temperature = pick(0.0f, 0.0f, 0.3f, 0.7f, 1.0f, 1.5f);
  p.top_k = pick(-1, 0, 1, 3, 40, 1500);
  p.top_p = pick(1.0f, 0.9f, 0.5f, 0.1f);
  p.min_p = pick(0.0f, 0.0f, 0.05f, 0.3f);
  p.repetition_penalty = pick(1.0f, 1.0f, 1.3f, 0.8f);
  p.presence_penalty = pick(0.0f, 0.0f, 0.5f, -1.0f);
  p.frequency_penalty = pick(0.0f, 0.0f, 0.4f);
  p.seed = rng();
  p.logprobs = pick(-1, -1, 0, 5, 20);
  p.lp_mode = rng() % 2 ? logprobs_mode::raw : logprobs_mode::processed;
  p.max_tokens = 64;
  p.min_tokens = pick(0, 0, 3);
  p.stop_token_ids = {static_cast<int32_t>(rng() % vocab)};
  // Distinct tokens: two nonzero biases for one token are the CPU sampler's alone (tested below).
  for (int i = 0, n = pick(0, 0, 1, 4); i < n; ++i) {
    const auto t = static_cast<int32_t>(rng() % vocab);
    if (std::none_of(p.logit_bias.begin(), p.logit_bias.end(), [&](const auto& b) { return b.first == t; }))
      p.logit_bias.emplace_back(t, pick(-100.0f, -2.5f, 3.0f, 100.0f));
  }
  return p;
}

// A block of real threads meeting at a barrier: the kernel's cooperation (reductions, scans, the
// shared histogram and picks, uneven id chunks) exercised on the CPU.
struct thread_team {
  explicit thread_team(int n) : size(n), bar(n), f(n), d(n), bp(n), ints(n) {}
  int size;
  std::barrier<> bar;
  std::vector<float> f;
  std::vector<double> d;
  std::vector<smath::best_pair> bp;
  std::vector<int32_t> ints;
  std::mutex mu;
};

struct threaded_block {
  thread_team* t;
  int id;
  int tid() const { return id; }
  int size() const { return t->size; }
  void sync() { t->bar.arrive_and_wait(); }
  template <class T, class F>
  T all(std::vector<T>& slot, T v, F combine) {
    slot[static_cast<size_t>(id)] = v;
    sync();
    T r = slot[0];
    for (int w = 1; w < size(); ++w) r = combine(r, slot[static_cast<size_t>(w)]);
    sync();
    return r;
  }
  float max(float v) { return all(t->f, v, [](float a, float b) { return a > b ? a : b; }); }
  double sum(double v) { return all(t->d, v, [](double a, double b) { return a + b; }); }
  int32_t max_int(int32_t v) { return all(t->ints, v, [](int32_t a, int32_t b) { return std::max(a, b); }); }
  smath::best_pair best(smath::best_pair p) { return all(t->bp, p, smath::best_of); }
  void add(double* p, double v) {
    std::lock_guard<std::mutex> lock(t->mu);
    *p += v;
  }
  void set_min(int32_t* p, int32_t v) {
    std::lock_guard<std::mutex> lock(t->mu);
    *p = std::min(*p, v);
  }
  double exclusive_scan(double v, double* total) {
    t->d[static_cast<size_t>(id)] = v;
    sync();
    double before = 0.0, sum = 0.0;
    for (int w = 0; w < size(); ++w) (w < id ? before : sum) += t->d[static_cast<size_t>(w)];
    sync();
    *total = sum + before;
    return before;
  }
};

// process() run by `threads` threads sharing the row, the scratch and the answer.
void process_threaded(int threads, std::vector<float>& row, const smath::row_params& p, smath::row_edit* edits,
                      smath::row_result& out) {
  thread_team team(threads);
  smath::row_shared sh;
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      threaded_block b{&team, i};
      smath::process(b, row.data(), static_cast<int64_t>(row.size()), p, edits, sh, out);
    });
  for (std::thread& th : pool) th.join();
}

// One step of the device path on the host: build the row, process it, record the answer.
struct device_path {
  int threads = 1;  // 1: serial_block
  std::vector<smath::row_edit> edits = std::vector<smath::row_edit>(8192);
  std::vector<int32_t> edit_of;
  sampled_seq step(sampler& s, std::vector<float> row) {
    if (edit_of.size() != row.size()) edit_of.assign(row.size(), -1);
    sampling_rows_out out{edits.data(), static_cast<int32_t>(edits.size()), 0, edit_of};
    smath::row_params p;
    const bool built = build_sampling_row(s, static_cast<int64_t>(row.size()), out, p);
    EXPECT_TRUE(built);
    EXPECT_TRUE(std::all_of(edit_of.begin(), edit_of.end(), [](int32_t v) { return v == -1; }));
    smath::row_result r;
    if (threads > 1) {
      process_threaded(threads, row, p, edits.data(), r);
    } else {
      smath::serial_block b;
      smath::row_shared sh;
      smath::process(b, row.data(), static_cast<int64_t>(row.size()), p, edits.data(), sh, r);
    }
    return finish_sampling_row(s, r, 0);
  }
};

// Masked tokens (min_tokens) have logprob -inf on both sides.
void expect_logprob(float got, float want) {
  if (std::isinf(want)) {
    EXPECT_EQ(got, want);
  } else {
    EXPECT_NEAR(got, want, 1e-5);
  }
}

// `trials` random sequences of 6 steps each, sampled by the CPU sampler and by the device path's
// math run by `threads` threads.
void expect_cpu_sampler_tokens(int threads, int trials) {
  std::mt19937_64 rng(2026 + static_cast<uint64_t>(threads));
  device_path dev;
  dev.threads = threads;
  int draws = 0, greedy = 0;
  for (int trial = 0; trial < trials; ++trial) {
    const int64_t vocab = std::vector<int64_t>{7, 100, 1000, 5003}[rng() % 4];
    const sampling_params p = random_params(rng, vocab);
    std::vector<int32_t> prompt(rng() % 30);
    for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % vocab);
    const std::vector<int32_t> eos = {static_cast<int32_t>(rng() % vocab)};
    sampler cpu(p, prompt, eos), gpu(p, prompt, eos);
    const bool ties = rng() % 2;
    for (int step = 0; step < 6; ++step) {
      std::vector<float> row = random_row(rng, vocab, ties);
      std::vector<float> cpu_row = row;
      const sampled_token want = cpu.sample(cpu_row);
      const sampled_seq got = dev.step(gpu, row);
      SCOPED_TRACE(testing::Message() << "trial " << trial << " step " << step << " vocab " << vocab << " t "
                                      << p.temperature << " k " << p.top_k << " p " << p.top_p << " min_p "
                                      << p.min_p << " ties " << ties);
      ASSERT_EQ(got.token.token, want.token);
      (p.temperature < smath::kGreedyEps ? greedy : draws) += 1;
      if (p.logprobs < 0) continue;
      expect_logprob(got.token.logprob, want.logprob);
      ASSERT_EQ(got.token.top.size(), want.top.size());
      for (size_t j = 0; j < want.top.size(); ++j) {
        EXPECT_EQ(got.token.top[j].token, want.top[j].token) << j;
        expect_logprob(got.token.top[j].logprob, want.top[j].logprob);
      }
    }
    EXPECT_EQ(gpu.num_generated(), cpu.num_generated());
  }
  EXPECT_GT(draws, trials * 5 / 3);  // both paths well exercised (a third of the knobs are greedy)
  EXPECT_GT(greedy, trials);
}

TEST(sampling_math, matches_cpu_sampler_token_for_token_over_random_rows_and_knobs) {
  expect_cpu_sampler_tokens(1, 300);
}

TEST(sampling_math, a_block_of_threads_matches_the_cpu_sampler_too) {
  expect_cpu_sampler_tokens(5, 60);
  expect_cpu_sampler_tokens(13, 30);
}

// Textbook filters: a full best-first sort, min_p, top_k, top_p; probabilities in double.
std::vector<double> reference_probs(const std::vector<float>& l, const smath::row_params& p) {
  const size_t n = l.size();
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  const double lmax = l[order[0]];
  std::vector<double> w(n, 0.0);
  const size_t k = p.top_k > 0 && static_cast<size_t>(p.top_k) < n ? static_cast<size_t>(p.top_k) : n;
  const double thr = p.min_p > 0 ? lmax + p.temperature * std::log(p.min_p) : -INFINITY;
  for (size_t r = 0; r < k; ++r)
    if (l[order[r]] >= thr) w[order[r]] = std::exp((l[order[r]] - lmax) / p.temperature);
  if (p.top_p < 1.0f) {
    const double keep = p.top_p * std::accumulate(w.begin(), w.end(), 0.0);
    double before = 0.0;
    for (int32_t id : order) {
      if (before >= keep) w[id] = 0.0;
      before += w[id];
    }
  }
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  for (double& v : w) v /= total;
  return w;
}

// The filters the draw uses, as probabilities: the draw's distribution, measured with u swept.
std::vector<double> drawn_probs(const std::vector<float>& l, smath::row_params p) {
  std::vector<double> prob(l.size(), 0.0);
  smath::serial_block b;
  smath::row_shared sh;
  // The token drawn at u is the first whose cumulative weight passes u * total: sweeping u over a
  // fine grid gives each kept token a share equal to its probability (to the grid's step).
  constexpr int kSteps = 4000;
  for (int i = 0; i < kSteps; ++i) {
    p.uniform = (i + 0.5) / kSteps;
    prob[static_cast<size_t>(smath::sample_filtered(b, l.data(), static_cast<int64_t>(l.size()), p, sh))] += 1.0 / kSteps;
  }
  return prob;
}

TEST(sampling_math, filters_keep_the_reference_set_with_its_probabilities) {
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t vocab = std::vector<int64_t>{5, 64, 700}[rng() % 3];
    const sampling_params sp = random_params(rng, vocab);
    smath::row_params p;
    p.temperature = std::max(sp.temperature, 0.5f);
    p.top_k = sp.top_k;
    p.top_p = sp.top_p;
    p.min_p = sp.min_p;
    const std::vector<float> l = random_row(rng, vocab, rng() % 2);
    const std::vector<double> want = reference_probs(l, p);
    const std::vector<double> got = drawn_probs(l, p);
    SCOPED_TRACE(testing::Message() << "trial " << trial << " k " << p.top_k << " p " << p.top_p << " min_p " << p.min_p);
    for (size_t i = 0; i < l.size(); ++i) {
      if (want[i] == 0.0) ASSERT_EQ(got[i], 0.0) << "token " << i << " is filtered out by the reference";
      // Each kept token owns a run of grid points: its share is its probability +- 2 steps.
      EXPECT_NEAR(got[i], want[i], 2.0 / 4000 + 1e-9) << "token " << i;
    }
  }
}

TEST(sampling_math, exact_filter_weights_match_the_reference_within_1e_6) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t vocab = std::vector<int64_t>{3, 50, 2000, 40000}[rng() % 4];
    const sampling_params sp = random_params(rng, vocab);
    smath::row_params p;
    p.temperature = std::max(sp.temperature, 0.2f);
    p.top_k = sp.top_k;
    p.top_p = sp.top_p;
    p.min_p = sp.min_p;
    const std::vector<float> l = random_row(rng, vocab, rng() % 2);
    smath::serial_block b;
    smath::row_shared sh;
    const smath::filter f = smath::make_filter(b, l.data(), vocab, p, sh);
    std::vector<double> got(l.size());
    for (size_t i = 0; i < l.size(); ++i) got[i] = f.weight(static_cast<int64_t>(i));
    const double total = std::accumulate(got.begin(), got.end(), 0.0);
    const std::vector<double> want = reference_probs(l, p);
    for (size_t i = 0; i < l.size(); ++i) {
      ASSERT_EQ(got[i] > 0.0, want[i] > 0.0) << "trial " << trial << " token " << i;
      ASSERT_NEAR(got[i] / total, want[i], 1e-6) << "trial " << trial << " token " << i;
    }
  }
}

TEST(sampling_math, a_row_that_needs_the_cpu_sampler_is_refused_untouched) {
  sampling_params p;
  p.seed = 1;
  p.logit_bias = {{3, 1.0f}, {3, 2.0f}};  // two nonzero biases for one token: (l + 1) + 2 != l + 3
  sampler s(p, {});
  std::vector<smath::row_edit> edits(4);
  std::vector<int32_t> edit_of(10, -1);
  sampling_rows_out out{edits.data(), 4, 0, edit_of};
  smath::row_params rp;
  EXPECT_FALSE(build_sampling_row(s, 10, out, rp));
  EXPECT_EQ(out.used, 0);
  EXPECT_TRUE(std::all_of(edit_of.begin(), edit_of.end(), [](int32_t v) { return v == -1; }));
  // Out of room: a repetition penalty over a 6-token prompt needs 6 edits.
  sampling_params q;
  q.seed = 9;
  q.temperature = 0.8f;
  q.repetition_penalty = 1.2f;
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
  sampler t(q, prompt);
  sampler ref(q, prompt);
  EXPECT_FALSE(build_sampling_row(t, 10, out, rp));
  EXPECT_EQ(out.used, 0);
  EXPECT_EQ(t.next_uniform(), ref.next_uniform()) << "a refused row must not consume the draw";
}

}  // namespace
}  // namespace troupe
