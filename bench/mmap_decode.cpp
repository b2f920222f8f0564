// Weights mapped from the file (--mmap) against copies (--no-mmap), side by side in one process:
// both models are loaded, then batch-1 decode steps alternate between them (ABBA), so a loaded
// machine's swings hit both alike. Prints each mode's median step time, the median of the paired
// ratios, load times and the bytes each holds mapped / copied.
//   bench_mmap_decode [model.gguf] [--threads N] [--steps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cpu_model.h"
#include "runtime/model_config.h"
#include "runtime/model_weights.h"

using namespace troupe;

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

struct side {
  std::unique_ptr<cpu_model> model;
  step_batch batch;
  std::vector<double> step_s;
};

}  // namespace

int main(int argc, char** argv) {
  std::string path = std::string(std::getenv("HOME") ? std::getenv("HOME") : "") +
                     "/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int threads = 2, steps = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--steps" && i + 1 < argc) steps = std::max(2, std::atoi(argv[++i]));
    else path = a;
  }
  auto cfg = read_model_config(path);
  if (!cfg) return std::fprintf(stderr, "%s\n", cfg.err().to_string().c_str()), 1;
  const int64_t block_len = 16, blocks = (steps + 16 + block_len) / block_len + 1;
  side sides[2];
  for (int k = 0; k < 2; ++k) {
    weight_load_options o;
    o.mmap = k == 0;
    auto t0 = clock_type::now();
    auto w = load_model_weights(*cfg, path, load_format::weights, o);
    if (!w) return std::fprintf(stderr, "%s\n", w.err().to_string().c_str()), 1;
    std::printf("%-9s load %.2f s, %.1f MiB held, %.1f MiB mapped\n", k == 0 ? "--mmap" : "--no-mmap", seconds_since(t0),
                w->num_bytes() / 1048576.0, w->mapped_bytes() / 1048576.0);
    cpu_model_options mo{blocks, block_len, threads};
    auto m = cpu_model::create(*cfg, std::move(*w), mo);
    if (!m) return std::fprintf(stderr, "%s\n", m.err().to_string().c_str()), 1;
    sides[k].model = std::move(*m);
    seq_step s;
    s.seq_id = 1;
    for (int i = 0; i < 16; ++i) s.tokens.push_back(static_cast<int32_t>((i * 7919 + 11) % cfg->vocab_size));
    for (int64_t b = 0; b < blocks; ++b) s.block_table.push_back(static_cast<int32_t>(b));
    sides[k].batch.seqs.push_back(s);
    step_logits out;
    if (auto st = sides[k].model->forward(sides[k].batch, out); !st) return std::fprintf(stderr, "%s\n", st.err().to_string().c_str()), 1;
  }
  step_logits out;
  std::vector<double> ratios;  // mmap step / copy step, per ABBA pair
  for (int i = 0; i < steps; ++i) {
    double t[2] = {0, 0};
    for (int j = 0; j < 2; ++j) {
      const int k = (i % 2 == 0) ? j : 1 - j;  // ABBA: neither always goes first
      seq_step& s = sides[k].batch.seqs[0];
      s.start_pos += static_cast<int32_t>(s.tokens.size());
      s.tokens = {static_cast<int32_t>((i * 31 + 7) % cfg->vocab_size)};
      auto t0 = clock_type::now();
      if (auto st = sides[k].model->forward(sides[k].batch, out); !st) return std::fprintf(stderr, "%s\n", st.err().to_string().c_str()), 1;
      t[k] = seconds_since(t0);
      sides[k].step_s.push_back(t[k]);
    }
    ratios.push_back(t[0] / t[1]);
  }
  const double a = median(sides[0].step_s), b = median(sides[1].step_s);
  std::printf("decode b1, %d threads, %d steps each: --mmap %.1f tok/s (%.2f ms) | --no-mmap %.1f tok/s (%.2f ms) | "
              "median paired step-time ratio mmap/copy %.3f\n",
              sides[0].model->num_threads(), steps, 1 / a, a * 1e3, 1 / b, b * 1e3, median(ratios));
  return 0;
}
