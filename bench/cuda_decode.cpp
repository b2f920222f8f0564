// bench_cuda_decode: the CUDA executor against its rooflines, on a Llama-3-8B shape with dummy bf16
// weights planned like `troupe serve --load-format dummy`: device copy bandwidth, decode step time
// beside (weights + KV read) / bandwidth, prefill tokens/s beside 2 * params * tokens / cuBLAS peak.
// Needs a GPU: without one (or in a build without CUDA) it says so and exits with code 2.
// Usage: bench_cuda_decode [--model config.json|folder] [--context 512] [--decode-batches 1,8,32,...]
//                          [--prefill-batches 1,4,16] [--runs 50] [--warmup 10] [--prefill-runs 5]
//                          [--gemm-size 8192] [--copy-mib 1024] [--session-len 8192] [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/error.h"
#include "config/options.h"

#ifdef TROUPE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "actors/devices.h"
#include "kernels/cublas_gemm.h"
#include "kernels/cuda_model.h"
#include "bench/cuda_decode_sampling.h"
#include "kernels/embedding.h"
#include "kernels/kernel_types.h"
#include "kernels/skinny_gemm.h"
#include "runtime/model_config.h"
#include "runtime/model_plan.h"
#endif

namespace {

using namespace troupe;

struct bench_options {
  std::string model;  // config.json or a folder holding one; empty: tests/data/llama3-8b
  int64_t context = 512;  // tokens already in KV at each decode step; prompt length of prefill
  std::vector<int64_t> decode_batches = {1, 8, 32, 64, 128, 256};
  std::vector<int64_t> prefill_batches = {1, 4, 16};
  // Medians of 10 steps after 3 warm-up wandered by up to 7% between runs on the H100 (clocks
  // still settling); 50 after 10 repeated to 0.2%.
  int32_t runs = 50;         // timed decode steps (and copies / GEMMs) per point
  int32_t warmup = 10;       // untimed steps before them
  int32_t prefill_runs = 5;  // timed prefill steps per batch size
  int64_t gemm_size = 8192;  // M = N = K of the GEMM peak measurement
  uint64_t copy_bytes = 1ull << 30;
  int32_t session_len = 8192;
  bool json = false;
  bool enforce_eager = false;  // no decode CUDA graphs (compare launch overhead)
  bool cublas_only = false;    // no skinny GEMM kernel (compare with cuBLAS at decode shapes)
  bool no_pdl = false;         // skinny GEMMs without programmatic dependent launch
  int32_t max_splits = 0;      // decode attention split-K bound; 0: the executor's default
  bool gemm_breakdown = true;  // time each decode GEMM shape alone
};

const char* kUsage =
    "usage: bench_cuda_decode [--model config.json|folder] [--context N] [--decode-batches 1,8,...]\n"
    "                         [--prefill-batches 1,4,16] [--runs N] [--warmup N] [--prefill-runs N]\n"
    "                         [--gemm-size N] [--copy-mib N] [--session-len N] [--enforce-eager]\n"
    "                         [--cublas-only] [--no-pdl] [--max-splits N] [--no-gemm-breakdown] [--json]\n";

std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> v;
  while (*s) {
    char* end = nullptr;
    const long long x = std::strtoll(s, &end, 10);
    if (end == s) return {};
    v.push_back(x);
    s = *end == ',' ? end + 1 : end;
  }
  return v;
}

// False on an unknown flag, a missing value or a non-positive number.
bool parse_args(int argc, char** argv, bench_options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--json") o.json = true;
    else if (a == "--enforce-eager") o.enforce_eager = true;
    else if (a == "--cublas-only") o.cublas_only = true;
    else if (a == "--no-pdl") o.no_pdl = true;
    else if (a == "--no-gemm-breakdown") o.gemm_breakdown = false;
    else if (a == "--max-splits" && has_value) o.max_splits = std::atoi(argv[++i]);
    else if (a == "--model" && has_value) o.model = argv[++i];
    else if (a == "--context" && has_value) o.context = std::atoll(argv[++i]);
    else if (a == "--decode-batches" && has_value) o.decode_batches = parse_list(argv[++i]);
    else if (a == "--prefill-batches" && has_value) o.prefill_batches = parse_list(argv[++i]);
    else if (a == "--runs" && has_value) o.runs = std::atoi(argv[++i]);
    else if (a == "--warmup" && has_value) o.warmup = std::max(0, std::atoi(argv[++i]));
    else if (a == "--prefill-runs" && has_value) o.prefill_runs = std::atoi(argv[++i]);
    else if (a == "--gemm-size" && has_value) o.gemm_size = std::atoll(argv[++i]);
    else if (a == "--copy-mib" && has_value) o.copy_bytes = std::strtoull(argv[++i], nullptr, 10) << 20;
    else if (a == "--session-len" && has_value) o.session_len = std::atoi(argv[++i]);
    else return false;
  }
  auto positive = [](const std::vector<int64_t>& v) {
    return !v.empty() && std::all_of(v.begin(), v.end(), [](int64_t x) { return x > 0; });
  };
  return o.context > 0 && o.runs > 0 && o.prefill_runs > 0 && o.gemm_size > 0 && o.copy_bytes > 0 &&
         o.session_len > o.context && positive(o.decode_batches) && positive(o.prefill_batches);
}

// tests/data/llama3-8b/config.json in the working directory or one of its parents.
std::string default_model() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::path dir = fs::current_path(ec); !ec && !dir.empty(); dir = dir.parent_path()) {
    const fs::path p = dir / "tests" / "data" / "llama3-8b" / "config.json";
    if (fs::exists(p, ec)) return p.string();
    if (dir == dir.root_path()) break;
  }
  return "tests/data/llama3-8b/config.json";
}

#ifdef TROUPE_HAVE_CUDA

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

using clock_type = std::chrono::steady_clock;

// Owners of the bench's own scratch memory (not the model's: that lives in cuda_model's arenas).
struct device_buffer {
  void* p = nullptr;
  device_buffer() = default;
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() {
    if (p) cudaFree(p);
  }
  status allocate(uint64_t bytes, const char* what) { return cuda_status(cudaMalloc(&p, bytes), what); }
};

struct stream_holder {
  cudaStream_t s = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  stream_holder() = default;
  stream_holder(const stream_holder&) = delete;
  stream_holder& operator=(const stream_holder&) = delete;
  ~stream_holder() {
    if (s) cudaStreamSynchronize(s);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (s) cudaStreamDestroy(s);
  }
  status create() {
    TROUPE_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    TROUPE_CUDA_TRY(cudaEventCreate(&start), "cudaEventCreate");
    return cuda_status(cudaEventCreate(&stop), "cudaEventCreate");
  }
  // Median milliseconds of `runs` calls of `launch` (which enqueues on s), each between two events.
  template <class F>
  result<double> time_ms(int32_t warmup, int32_t runs, F&& launch) {
    for (int32_t i = 0; i < warmup; ++i) TROUPE_TRY(launch());
    TROUPE_CUDA_TRY(cudaStreamSynchronize(s), "warm-up");
    std::vector<double> ms;
    for (int32_t i = 0; i < runs; ++i) {
      TROUPE_CUDA_TRY(cudaEventRecord(start, s), "cudaEventRecord");
      TROUPE_TRY(launch());
      TROUPE_CUDA_TRY(cudaEventRecord(stop, s), "cudaEventRecord");
      TROUPE_CUDA_TRY(cudaEventSynchronize(stop), "cudaEventSynchronize");
      float t = 0.f;
      TROUPE_CUDA_TRY(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
      ms.push_back(t);
    }
    return median(ms);
  }
};

// Device copy bandwidth in GB/s (1e9 bytes), counting the bytes read plus the bytes written, which is
// the HBM traffic a copy causes and the unit the decode roofline divides by.
result<double> measure_copy_bandwidth(const bench_options& o) {
  stream_holder st;
  TROUPE_TRY(st.create());
  device_buffer src, dst;
  TROUPE_TRY(src.allocate(o.copy_bytes, "cudaMalloc (copy source)"));
  TROUPE_TRY(dst.allocate(o.copy_bytes, "cudaMalloc (copy destination)"));
  TROUPE_CUDA_TRY(cudaMemsetAsync(src.p, 1, o.copy_bytes, st.s), "cudaMemset");
  TROUPE_CUDA_TRY(cudaMemsetAsync(dst.p, 0, o.copy_bytes, st.s), "cudaMemset");
  auto ms = st.time_ms(std::max(o.warmup, 1), o.runs, [&]() -> status {
    return cuda_status(cudaMemcpyAsync(dst.p, src.p, o.copy_bytes, cudaMemcpyDeviceToDevice, st.s), "D2D copy");
  });
  if (!ms) return ms.err();
  return 2.0 * static_cast<double>(o.copy_bytes) / (*ms * 1e-3) / 1e9;
}

// cuBLAS bf16 peak in TFLOP/s: Y[n, n] = X[n, n] W[n, n]^T through cublas_gemm, on random inputs
// (zeros would draw less power and overstate the peak).
result<double> measure_gemm_peak(const bench_options& o) {
  const int64_t n = o.gemm_size;
  const uint64_t bytes = static_cast<uint64_t>(n * n) * 2, ws_bytes = 32ull << 20;
  stream_holder st;
  TROUPE_TRY(st.create());
  device_buffer x, w, y, ws;
  TROUPE_TRY(x.allocate(bytes, "cudaMalloc (gemm x)"));
  TROUPE_TRY(w.allocate(bytes, "cudaMalloc (gemm w)"));
  TROUPE_TRY(y.allocate(bytes, "cudaMalloc (gemm y)"));
  TROUPE_TRY(ws.allocate(ws_bytes, "cudaMalloc (cuBLAS workspace)"));
  TROUPE_CUDA_TRY(launch_random_fill({x.p, n * n, 1.f, 0.f, 1, kernel_dtype::bf16}, st.s), "random fill");
  TROUPE_CUDA_TRY(launch_random_fill({w.p, n * n, 1.f, 0.f, 2, kernel_dtype::bf16}, st.s), "random fill");
  cublas_gemm gemm;  // destroyed before st (declared after it)
  TROUPE_TRY(gemm.init(st.s, ws.p, ws_bytes));
  gemm_args a;
  a.y = y.p, a.x = x.p, a.w = w.p, a.m = n, a.n = n, a.k = n;
  auto ms = st.time_ms(std::max(o.warmup, 1), o.runs, [&] { return gemm.run(a); });
  if (!ms) return ms.err();
  const double nd = static_cast<double>(n);
  return 2.0 * nd * nd * nd / (*ms * 1e-3) / 1e12;
}

// What one token costs the model, from its config (bf16: 2 bytes an element).
struct model_costs {
  double layer_matmul_params = 0;  // q/k/v/o/gate/up/down of every layer (+ q/k/v biases)
  double lm_head_params = 0;       // vocab * hidden
  double total_params = 0;         // + embedding (when untied) and norms
  uint64_t decode_weight_bytes = 0;  // read by every decode step: layers, norms, LM head (not the embedding table)
  uint64_t kv_bytes_per_token = 0;   // K and V of one token over all layers
};

model_costs costs_of(const model_config& c) {
  auto d = [](int64_t x) { return static_cast<double>(x); };
  const double H = d(c.hidden_size), I = d(c.intermediate_size), V = d(c.vocab_size), L = d(c.num_layers);
  const double qkv = static_cast<double>(c.q_size() + 2 * c.kv_size());
  model_costs m;
  m.layer_matmul_params = L * (qkv * H + (c.attention_bias ? qkv : 0) + H * d(c.q_size()) + 3 * I * H);
  m.lm_head_params = V * H;
  const double norms = L * 2 * H + H;
  m.total_params = m.layer_matmul_params + m.lm_head_params + norms + (c.tie_word_embeddings ? 0 : V * H);
  m.decode_weight_bytes = static_cast<uint64_t>(2 * (m.layer_matmul_params + m.lm_head_params + norms));
  m.kv_bytes_per_token = static_cast<uint64_t>(c.num_layers * 2 * c.kv_size() * 2);
  return m;
}

// Sequence `s` of the bench: its own blocks_per_seq blocks (covering context + 1 tokens), `n`
// pseudo-random tokens at `start_pos`.
seq_step make_seq(int64_t s, int64_t n, int64_t start_pos, int64_t blocks_per_seq, int64_t vocab) {
  seq_step st;
  st.seq_id = s;
  for (int64_t i = 0; i < n; ++i) st.tokens.push_back(static_cast<int32_t>((s * 131 + (start_pos + i) * 7919) % vocab));
  st.start_pos = static_cast<int32_t>(start_pos);
  for (int64_t i = 0; i < blocks_per_seq; ++i) st.block_table.push_back(static_cast<int32_t>(s * blocks_per_seq + i));
  return st;
}

// Median seconds of `runs` forward() calls (host wall clock: forward() returns after its stream
// synchronises, so this is the step time a scheduler sees, metadata staging and logits copy included).
result<double> time_forward(cuda_model& m, const step_batch& b, int32_t warmup, int32_t runs) {
  step_logits out;
  for (int32_t i = 0; i < warmup; ++i) TROUPE_TRY(m.forward(b, out));
  std::vector<double> s;
  for (int32_t i = 0; i < runs; ++i) {
    const auto t0 = clock_type::now();
    TROUPE_TRY(m.forward(b, out));
    s.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
  }
  return median(s);
}

struct bench_context {
  const bench_options& o;
  cuda_model& model;
  model_costs costs;
  int64_t blocks_per_seq = 0;
  double copy_gbps = 0, gemm_tflops = 0;
};

// Prefill tokens/s: `b` sequences of o.context tokens in one step, each wanting its last logits.
result<nlohmann::json> run_prefill(const bench_context& c, int64_t b) {
  step_batch batch;
  for (int64_t s = 0; s < b; ++s)
    batch.seqs.push_back(make_seq(s, c.o.context, 0, c.blocks_per_seq, c.model.config().vocab_size));
  auto t = time_forward(c.model, batch, 1, c.o.prefill_runs);
  if (!t) return t.err();
  const double tokens = static_cast<double>(b * c.o.context);
  const double flops = 2 * c.costs.layer_matmul_params * tokens + 2 * c.costs.lm_head_params * static_cast<double>(b);
  const double bound_s = flops / (c.gemm_tflops * 1e12);
  return nlohmann::json{{"batch", b},           {"tokens", b * c.o.context},     {"step_ms", *t * 1e3},
                        {"tokens_per_s", tokens / *t}, {"gemm_bound_ms", bound_s * 1e3},
                        {"gemm_bound_tokens_per_s", tokens / bound_s}, {"fraction_of_bound", bound_s / *t}};
}

// Decode step time: `b` sequences with o.context tokens in KV, one new token each; once with every
// sequence wanting logits (what serving does: b rows copied back), once with only the first.
result<nlohmann::json> run_decode(const bench_context& c, int64_t b) {
  step_batch batch;
  for (int64_t s = 0; s < b; ++s)
    batch.seqs.push_back(make_seq(s, 1, c.o.context, c.blocks_per_seq, c.model.config().vocab_size));
  auto all_rows = time_forward(c.model, batch, c.o.warmup, c.o.runs);
  if (!all_rows) return all_rows.err();
  auto sampled = bench::time_forward_sampled(c.model, batch, c.o.warmup, c.o.runs);  // serving: on the device
  if (!sampled) return sampled.err();
  for (size_t s = 1; s < batch.seqs.size(); ++s) batch.seqs[s].want_logits = false;
  auto one_row = time_forward(c.model, batch, c.o.warmup, c.o.runs);
  if (!one_row) return one_row.err();
  const uint64_t kv_read = static_cast<uint64_t>(b * (c.o.context + 1)) * c.costs.kv_bytes_per_token;
  const uint64_t bytes = c.costs.decode_weight_bytes + kv_read;
  const double roofline_s = static_cast<double>(bytes) / (c.copy_gbps * 1e9);
  return nlohmann::json{{"batch", b},
                        {"context", c.o.context},
                        {"step_ms", *all_rows * 1e3},
                        {"tokens_per_s", static_cast<double>(b) / *all_rows},
                        {"step_ms_one_logit_row", *one_row * 1e3},
                        {"step_ms_sampled_on_device", *sampled * 1e3},
                        {"weight_bytes_read", c.costs.decode_weight_bytes},
                        {"kv_bytes_read", kv_read},
                        {"roofline_ms", roofline_s * 1e3},
                        {"fraction_of_roofline", roofline_s / *all_rows},
                        {"fraction_of_roofline_one_logit_row", roofline_s / *one_row}};
}

// Writes the KV of every decode sequence (positions [0, context)) with real prefill steps, as many
// sequences per step as max_prefill_token_num allows, so decode attention reads computed K/V.
status fill_kv(const bench_context& c, int64_t num_seqs, int64_t per_step) {
  step_logits out;
  for (int64_t s0 = 0; s0 < num_seqs; s0 += per_step) {
    step_batch batch;
    for (int64_t s = s0; s < std::min(num_seqs, s0 + per_step); ++s)
      batch.seqs.push_back(make_seq(s, c.o.context, 0, c.blocks_per_seq, c.model.config().vocab_size));
    TROUPE_TRY(c.model.forward(batch, out));
  }
  return ok_status();
}

void print_gemm_breakdown(const nlohmann::json& r, std::FILE* f) {
  if (!r.contains("gemm_breakdown")) return;
  std::fprintf(f, "\ndecode GEMMs alone (weight bytes read / time, median of %d):\n", r["runs"].get<int>());
  std::fprintf(f, "%8s %3s %7s %7s %11s %11s %12s %12s\n", "gemm", "m", "n", "k", "skinny us", "cuBLAS us",
               "skinny GB/s", "cuBLAS GB/s");
  for (const auto& g : r["gemm_breakdown"])
    std::fprintf(f, "%8s %3lld %7lld %7lld %11.1f %11.1f %12.0f %12.0f\n", g["gemm"].get<std::string>().c_str(),
                 g["m"].get<long long>(), g["n"].get<long long>(), g["k"].get<long long>(), g["skinny_us"].get<double>(),
                 g["cublas_us"].get<double>(), g["skinny_gbps"].get<double>(), g["cublas_gbps"].get<double>());
}

void print_tables(const nlohmann::json& r, std::FILE* f) {
  std::fprintf(f, "device: %s\n", r["device"].get<std::string>().c_str());
  std::fprintf(f, "model: %s, %.2f B params, %s dummy weights (%.2f GiB on the device), KV %lld blocks of %lld tokens\n",
               r["model"].get<std::string>().c_str(), r["params"].get<double>() / 1e9, r["dtype"].get<std::string>().c_str(),
               r["weights_bytes"].get<double>() / (1ull << 30), r["kv_blocks"].get<long long>(),
               r["block_seq_len"].get<long long>());
  std::fprintf(f, "decode CUDA graphs: %zu batch sizes (%.1f MiB)%s\n", r["decode_graphs"].size(),
               r["graph_bytes"].get<double>() / (1 << 20), r["decode_graphs"].empty() ? ", eager launches" : "");
  std::fprintf(f, "decode GEMMs (m <= %d): %s\n", cuda_model_options{}.skinny_gemm_rows,
               r["skinny_gemm"].get<bool>() ? "skinny weight-streaming kernel" : "cuBLAS");
  std::fprintf(f, "copy bandwidth: %.1f GB/s (cudaMemcpy D2D of %.2f GiB, read + write bytes, median of %d)\n",
               r["copy_gbps"].get<double>(), r["copy_bytes"].get<double>() / (1ull << 30), r["runs"].get<int>());
  std::fprintf(f, "cuBLAS bf16 GEMM %lld^3: %.1f TFLOP/s (median of %d)\n\n", r["gemm_size"].get<long long>(),
               r["gemm_tflops"].get<double>(), r["runs"].get<int>());
  std::fprintf(f, "decode, %lld tokens in KV (filled by prefill), median of %d steps after %d warm-up:\n",
               r["context"].get<long long>(), r["runs"].get<int>(), r["warmup"].get<int>());
  std::fprintf(f, "%6s %10s %10s %14s %13s %12s %12s %9s %12s\n", "batch", "step ms", "tok/s", "ms (1 logit)",
               "ms (sampled)", "GB read", "roofline ms", "of roof", "(1 logit)");
  for (const auto& d : r["decode"])
    std::fprintf(f, "%6lld %10.2f %10.1f %14.2f %13.2f %12.2f %12.2f %8.1f%% %11.1f%%\n", d["batch"].get<long long>(),
                 d["step_ms"].get<double>(), d["tokens_per_s"].get<double>(), d["step_ms_one_logit_row"].get<double>(),
                 d["step_ms_sampled_on_device"].get<double>(),
                 (d["weight_bytes_read"].get<double>() + d["kv_bytes_read"].get<double>()) / 1e9,
                 d["roofline_ms"].get<double>(), 100 * d["fraction_of_roofline"].get<double>(),
                 100 * d["fraction_of_roofline_one_logit_row"].get<double>());
  std::fprintf(f, "\nprefill, %lld-token prompts, median of %d steps (GEMM bound: 2 x %.2f B matmul params x tokens"
                  " / GEMM peak; attention FLOPs not counted):\n",
               r["context"].get<long long>(), r["prefill_runs"].get<int>(), r["matmul_params"].get<double>() / 1e9);
  std::fprintf(f, "%6s %8s %10s %12s %16s %9s\n", "batch", "tokens", "step ms", "tok/s", "bound tok/s", "of bound");
  for (const auto& p : r["prefill"])
    std::fprintf(f, "%6lld %8lld %10.2f %12.1f %16.1f %8.1f%%\n", p["batch"].get<long long>(),
                 p["tokens"].get<long long>(), p["step_ms"].get<double>(), p["tokens_per_s"].get<double>(),
                 p["gemm_bound_tokens_per_s"].get<double>(), 100 * p["fraction_of_bound"].get<double>());
  print_gemm_breakdown(r, f);
}

// The decode GEMMs alone at m rows: each of the model's weight shapes (one layer's qkv, o, gate_up,
// down and the LM head), skinny kernel vs cuBLAS, as read bandwidth (weight bytes / time).
result<nlohmann::json> run_gemm_breakdown(const bench_context& c, int64_t m) {
  const model_config& cfg = c.model.config();
  struct shape {
    const char* name;
    int64_t n, k;
  };
  const shape shapes[] = {{"qkv", cfg.q_size() + 2 * cfg.kv_size(), cfg.hidden_size},
                          {"o", cfg.hidden_size, cfg.q_size()},
                          {"gate_up", 2 * cfg.intermediate_size, cfg.hidden_size},
                          {"down", cfg.hidden_size, cfg.intermediate_size},
                          {"lm_head", cfg.vocab_size, cfg.hidden_size}};
  int64_t max_w = 0, max_k = 0, max_n = 0;
  for (const shape& s : shapes) max_w = std::max(max_w, s.n * s.k), max_k = std::max(max_k, s.k), max_n = std::max(max_n, s.n);
  stream_holder st;
  TROUPE_TRY(st.create());
  device_buffer w, x, y, ws;
  TROUPE_TRY(w.allocate(static_cast<uint64_t>(max_w) * 2, "cudaMalloc (gemm w)"));
  TROUPE_TRY(x.allocate(static_cast<uint64_t>(m * max_k) * 2, "cudaMalloc (gemm x)"));
  TROUPE_TRY(y.allocate(static_cast<uint64_t>(m * max_n) * 4, "cudaMalloc (gemm y)"));
  TROUPE_TRY(ws.allocate(32ull << 20, "cudaMalloc (cuBLAS workspace)"));
  TROUPE_CUDA_TRY(launch_random_fill({w.p, max_w, 1.f, 0.f, 3, kernel_dtype::bf16}, st.s), "random fill");
  TROUPE_CUDA_TRY(launch_random_fill({x.p, m * max_k, 1.f, 0.f, 4, kernel_dtype::bf16}, st.s), "random fill");
  cublas_gemm gemm;
  TROUPE_TRY(gemm.init(st.s, ws.p, 32ull << 20));
  nlohmann::json out = nlohmann::json::array();
  for (const shape& s : shapes) {
    gemm_args a;
    a.y = y.p, a.x = x.p, a.w = w.p, a.m = m, a.n = s.n, a.k = s.k;
    a.y_float32 = std::string(s.name) == "lm_head";
    auto skinny = st.time_ms(std::max(c.o.warmup, 1), c.o.runs,
                             [&] { return cuda_status(launch_skinny_gemm(a, st.s), "skinny_gemm"); });
    if (!skinny) return skinny.err();
    auto cublas = st.time_ms(std::max(c.o.warmup, 1), c.o.runs, [&] { return gemm.run(a); });
    if (!cublas) return cublas.err();
    const double bytes = 2.0 * static_cast<double>(s.n * s.k);
    out.push_back({{"gemm", s.name}, {"m", m}, {"n", s.n}, {"k", s.k}, {"skinny_us", *skinny * 1e3},
                   {"cublas_us", *cublas * 1e3}, {"skinny_gbps", bytes / (*skinny * 1e-3) / 1e9},
                   {"cublas_gbps", bytes / (*cublas * 1e-3) / 1e9}});
  }
  return out;
}

// Plans like `troupe serve --device cuda --load-format dummy --dtype bfloat16`, with the batch
// limits the bench needs, then measures. Errors are returned; main turns them into exit code 1.
result<nlohmann::json> run_bench(const bench_options& o, const cudaDeviceProp& prop) {
  auto cfg = read_model_config(o.model);
  if (!cfg) return cfg.err();
  nlohmann::json r;
  r["device"] = std::string(prop.name) + " (" + std::to_string(prop.multiProcessorCount) + " SMs, " +
                format_bytes(prop.totalGlobalMem) + ")";
  r["model"] = o.model;
  r["context"] = o.context, r["runs"] = o.runs, r["warmup"] = o.warmup, r["prefill_runs"] = o.prefill_runs;
  auto gbps = measure_copy_bandwidth(o);
  if (!gbps) return gbps.err();
  auto tflops = measure_gemm_peak(o);
  if (!tflops) return tflops.err();
  r["copy_bytes"] = o.copy_bytes, r["copy_gbps"] = *gbps;
  r["gemm_size"] = o.gemm_size, r["gemm_tflops"] = *tflops;

  const int64_t max_decode = *std::max_element(o.decode_batches.begin(), o.decode_batches.end());
  const int64_t max_prefill = *std::max_element(o.prefill_batches.begin(), o.prefill_batches.end());
  engine_options eng;
  eng.device = "cuda";
  eng.model.model = o.model;
  eng.model.dtype = "bfloat16";
  eng.model.load_format = "dummy";
  eng.session_len = o.session_len;
  eng.max_batch_size = static_cast<int32_t>(std::max(max_decode, max_prefill));
  eng.max_prefill_token_num = static_cast<int32_t>(max_prefill * o.context);
  eng.enforce_eager = o.enforce_eager;
  auto devices = devices_for_plan(eng);
  if (!devices) return devices.err();
  auto plan = plan_for_model(*cfg, eng, *devices);
  if (!plan) return plan.err();
  cuda_model_options mo = cuda_model::options_from_plan(*plan, eng);
  mo.dummy_weights = true;
  if (o.cublas_only) mo.skinny_gemm_rows = 0;
  mo.programmatic_launch = !o.no_pdl;
  if (o.max_splits > 0) mo.max_splits = o.max_splits;
  auto made = cuda_model::create(*cfg, nullptr, mo);
  if (!made) return made.err();
  cuda_model& m = **made;

  bench_context c{o, m, costs_of(*cfg)};
  c.blocks_per_seq = (o.context + 1 + m.block_seq_len() - 1) / m.block_seq_len();
  c.copy_gbps = *gbps;
  c.gemm_tflops = *tflops;
  const int64_t num_seqs = std::max(max_decode, max_prefill);
  if (num_seqs * c.blocks_per_seq > m.num_kv_blocks())
    return make_error(errc::out_of_memory, std::to_string(num_seqs) + " sequences of " + std::to_string(o.context + 1) +
                                               " tokens need " + std::to_string(num_seqs * c.blocks_per_seq) +
                                               " KV blocks, the plan has " + std::to_string(m.num_kv_blocks()));
  r["dtype"] = plan->dtype, r["params"] = c.costs.total_params, r["matmul_params"] = c.costs.layer_matmul_params;
  r["weights_bytes"] = m.weights_bytes(), r["kv_blocks"] = m.num_kv_blocks(), r["block_seq_len"] = m.block_seq_len();
  r["decode_graphs"] = m.graph_batch_sizes(), r["graph_bytes"] = m.graph_bytes();
  r["skinny_gemm"] = !o.cublas_only;

  r["prefill"] = nlohmann::json::array();
  for (int64_t b : o.prefill_batches) {
    auto p = run_prefill(c, b);
    if (!p) return p.err();
    r["prefill"].push_back(*p);
  }
  TROUPE_TRY(fill_kv(c, max_decode, std::max<int64_t>(1, plan->max_prefill_token_num / o.context)));
  r["kv_content"] = "computed by prefill of the dummy prompts";
  r["decode"] = nlohmann::json::array();
  for (int64_t b : o.decode_batches) {
    auto d = run_decode(c, b);
    if (!d) return d.err();
    r["decode"].push_back(*d);
  }
  r["gemm_breakdown"] = nlohmann::json::array();
  for (int64_t m : {1, 2, 4, 8}) {
    if (!o.gemm_breakdown) break;
    auto g = run_gemm_breakdown(c, m);
    if (!g) return g.err();
    for (auto& e : *g) r["gemm_breakdown"].push_back(e);
  }
  return r;
}

#endif  // TROUPE_HAVE_CUDA

}  // namespace

int main(int argc, char** argv) {
  bench_options o;
  if (!parse_args(argc, argv, o)) {
    std::fputs(kUsage, stderr);
    return 1;
  }
  if (o.model.empty()) o.model = default_model();
#ifndef TROUPE_HAVE_CUDA
  std::fprintf(stderr, "bench_cuda_decode: this troupe was built without CUDA (no nvcc at configure time); "
                       "nothing to measure\n");
  return 2;
#else
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::fprintf(stderr, "bench_cuda_decode: no CUDA device available (%s); run it on a machine with a GPU\n",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 2;
  }
  cudaDeviceProp prop{};
  if (const cudaError_t pe = cudaGetDeviceProperties(&prop, 0); pe != cudaSuccess) {
    std::fprintf(stderr, "bench_cuda_decode: cudaGetDeviceProperties: %s\n", cudaGetErrorString(pe));
    return 2;
  }
  auto r = run_bench(o, prop);
  if (!r) {
    std::fprintf(stderr, "bench_cuda_decode: %s\n", r.err().to_string().c_str());
    return 1;
  }
  print_tables(*r, o.json ? stderr : stdout);
  if (o.json) std::printf("%s\n", r->dump(2).c_str());
  return 0;
#endif
}
