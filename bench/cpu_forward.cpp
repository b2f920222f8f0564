// bench_cpu_forward: prefill and decode tokens/s of the CPU forward pass at batch 1, 8 and 32, plus
// a check of why cpu_kernels does not use BLAS (OpenBLAS sgemm rows vs M, and its speed).
// Usage: bench_cpu_forward [model path | --dummy] [--dtype f32|bf16|f16] [--kv-dtype f16|f32] [--threads N]
//                          [--runs R] [--prompt L] [--context N] [--batches 1,8,32] [--no-blas-check]
// --context N: each sequence first holds N cached positions (prefilled untimed, in 512-token chunks), so
// the timed prefill of L tokens attends over N + L positions (a later turn of a conversation).
// Default model: ~/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf, else dummy SmolLM2 weights.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/cpu_matmul.h"
#include "runtime/cpu_model.h"
#include "runtime/model_weights.h"
#include "runtime/weight_source.h"

namespace {

using namespace troupe;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

model_config smollm2_shape() {
  model_config c;
  c.architecture = "llama";
  c.name = "dummy SmolLM2-135M";
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_layers = 30;
  c.num_heads = 9;
  c.num_kv_heads = 3;
  c.head_dim = 64;
  c.max_position_embeddings = 8192;
  c.rope.theta = 100000.0;
  c.tie_word_embeddings = true;
  return c;
}

bool load(const std::string& path, const weight_load_options& opts, model_config& cfg, model_weights& w) {
  auto c = read_model_config(path);
  if (!c) {
    std::fprintf(stderr, "cannot read %s (%s); using dummy SmolLM2-135M weights\n", path.c_str(),
                 c.err().to_string().c_str());
    return false;
  }
  auto src = open_weights(path);
  if (!src) {
    std::fprintf(stderr, "cannot open weights (%s); using dummy weights\n", src.err().to_string().c_str());
    return false;
  }
  auto lw = load_model_weights(*c, **src, opts);
  if (!lw) {
    std::fprintf(stderr, "cannot load weights (%s); using dummy weights\n", lw.err().to_string().c_str());
    return false;
  }
  cfg = *c;
  w = std::move(*lw);
  return true;
}

// OpenBLAS vs matmul_nt on a decoder-sized matmul: is row 0 of an M-row sgemm bit-identical to the
// 1-row result, and how fast is each?
void blas_check(int threads, int64_t k, int64_t n) {
  std::vector<float> x(128 * k), w(n * k), y1(n), ym(128 * n);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.11f * static_cast<float>(i)) * 0.05f;
  openblas_set_num_threads(threads);
  cpu_thread_pool pool(threads);
  for (int64_t m : {1, 8, 32, 128}) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, n, k, 1.0f, x.data(), k, w.data(), k, 0.0f, y1.data(), n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data(), k, 0.0f, ym.data(), n);
    const bool blas_same = std::memcmp(y1.data(), ym.data(), n * sizeof(float)) == 0;
    matmul_nt(x.data(), 1, k, w.data(), n, nullptr, y1.data(), pool);
    matmul_nt(x.data(), m, k, w.data(), n, nullptr, ym.data(), pool);
    const bool ours_same = std::memcmp(y1.data(), ym.data(), n * sizeof(float)) == 0;
    std::vector<double> tb, to;
    for (int r = 0; r < 20; ++r) {
      auto t0 = clock_type::now();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data(), k, 0.0f, ym.data(), n);
      tb.push_back(seconds_since(t0));
      t0 = clock_type::now();
      matmul_nt(x.data(), m, k, w.data(), n, nullptr, ym.data(), pool);
      to.push_back(seconds_since(t0));
    }
    const double flops = 2.0 * m * n * k;
    std::printf("matmul [%3ld x %4ld] x [%4ld x %4ld]^T: openblas %6.1f GFLOP/s row0-invariant=%s | matmul_nt %6.1f GFLOP/s row0-invariant=%s\n",
                static_cast<long>(m), static_cast<long>(k), static_cast<long>(n), static_cast<long>(k),
                flops / median(tb) / 1e9, blas_same ? "yes" : "NO", flops / median(to) / 1e9, ours_same ? "yes" : "NO");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = std::string(std::getenv("HOME") ? std::getenv("HOME") : "") +
                     "/.cache/troupe/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int threads = 0, runs = 3;
  weight_load_options opts;  // auto: the checkpoint's format (GGUF block formats stay quantized)
  weight_dtype kv_dtype = weight_dtype::f16;  // the server's default on the CPU
  bool blas = true;
  int64_t prompt = 64, context = 0;
  std::vector<int64_t> batches = {1, 8, 32};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--prompt" && i + 1 < argc) prompt = std::max(1, std::atoi(argv[++i]));
    else if (a == "--context" && i + 1 < argc) context = std::max(0, std::atoi(argv[++i]));
    else if (a == "--batches" && i + 1 < argc) {
      batches.clear();
      for (char* s = argv[++i]; *s;) {
        batches.push_back(std::strtol(s, &s, 10));
        if (*s == ',') ++s;
      }
    } else if (a == "--dtype" && i + 1 < argc) {
      auto d = parse_weight_dtype(argv[++i]);
      if (!d) return std::fprintf(stderr, "%s\n", d.err().to_string().c_str()), 2;
      opts.dtype = *d;
    } else if (a == "--kv-dtype" && i + 1 < argc) {
      auto d = parse_weight_dtype(argv[++i]);
      if (!d || *d == weight_dtype::bf16) return std::fprintf(stderr, "--kv-dtype: f16 or f32\n"), 2;
      kv_dtype = *d;
    } else if (a == "--no-blas-check") blas = false;
    else if (a == "--dummy") path.clear();
    else if (a == "--no-mmap") opts.mmap = false;
    else if (a == "--mmap") opts.mmap = true;
    else path = a;
  }
  model_config cfg = smollm2_shape();
  model_weights w;
  auto t0 = clock_type::now();
  if (path.empty() || !load(path, opts, cfg, w)) w = std::move(*make_dummy_weights(cfg, 1, opts.dtype.value_or(weight_dtype::f32)));
  std::printf("model: %s (%.1f MiB of %s weights, %.1f MiB mapped from the file, loaded in %.2f s)\n", cfg.name.c_str(),
              w.num_bytes() / 1048576.0, weight_dtype_name(w.layers[0].w_qkv.dtype), w.mapped_bytes() / 1048576.0,
              seconds_since(t0));

  const int64_t block_len = 16, decode_steps = 8;
  const int64_t max_batch = *std::max_element(batches.begin(), batches.end());
  const int64_t blocks_per_seq = (context + prompt + decode_steps + block_len - 1) / block_len;
  cpu_model_options mo{max_batch * blocks_per_seq, block_len, threads};
  mo.kv_dtype = kv_dtype;
  auto made = cpu_model::create(cfg, std::move(w), mo);
  if (!made) {
    std::fprintf(stderr, "%s\n", made.err().to_string().c_str());
    return 1;
  }
  cpu_model& m = **made;
  std::printf("threads: %d, prompt: %ld tokens after %ld cached, block_seq_len %ld, KV %s, median of %d runs\n",
              m.num_threads(), static_cast<long>(prompt), static_cast<long>(context), static_cast<long>(block_len), weight_dtype_name(kv_dtype), runs);
  if (blas) {
    blas_check(m.num_threads(), 576, 1536);
    blas_check(m.num_threads(), 1536, 576);
  }

  for (int64_t b : batches) {
    std::vector<double> prefill_s, decode_s;
    for (int r = 0; r < runs; ++r) {
      step_batch batch;
      for (int64_t s = 0; s < b; ++s) {
        seq_step st;
        st.seq_id = s;
        for (int64_t i = 0; i < prompt; ++i) st.tokens.push_back(static_cast<int32_t>((s * 131 + i * 7919) % cfg.vocab_size));
        for (int64_t i = 0; i < blocks_per_seq; ++i) st.block_table.push_back(static_cast<int32_t>(s * blocks_per_seq + i));
        batch.seqs.push_back(std::move(st));
      }
      step_logits out;
      for (int64_t done = 0; done < context;) {  // the cached history, untimed
        const int64_t len = std::min<int64_t>(512, context - done);
        step_batch hist = batch;
        for (auto& st : hist.seqs) {
          st.start_pos = static_cast<int32_t>(done);
          st.tokens.clear();
          for (int64_t i = done; i < done + len; ++i) st.tokens.push_back(static_cast<int32_t>((i * 104729 + 17) % cfg.vocab_size));
        }
        if (auto st = m.forward(hist, out); !st) return std::fprintf(stderr, "%s\n", st.err().to_string().c_str()), 1;
        done += len;
      }
      for (auto& st : batch.seqs) st.start_pos = static_cast<int32_t>(context);
      auto t = clock_type::now();
      if (auto st = m.forward(batch, out); !st) return std::fprintf(stderr, "%s\n", st.err().to_string().c_str()), 1;
      prefill_s.push_back(seconds_since(t));
      for (int64_t d = 0; d < decode_steps; ++d) {
        for (auto& st : batch.seqs) {
          st.start_pos += static_cast<int32_t>(st.tokens.size());
          st.tokens = {static_cast<int32_t>(d + 3)};
        }
        t = clock_type::now();
        if (auto st = m.forward(batch, out); !st) return std::fprintf(stderr, "%s\n", st.err().to_string().c_str()), 1;
        decode_s.push_back(seconds_since(t));
      }
    }
    std::printf("batch %2ld: prefill %8.1f tok/s (%ld x %ld tokens in %.3f s) | decode %7.1f tok/s (%.1f ms/step)\n",
                static_cast<long>(b), b * prompt / median(prefill_s), static_cast<long>(b), static_cast<long>(prompt),
                median(prefill_s), b / median(decode_s), median(decode_s) * 1e3);
  }
  // Resident memory after the runs: mapped weights show as RssFile, copies as RssAnon.
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "VmRSS", 5) == 0 || std::strncmp(line, "RssAnon", 7) == 0 || std::strncmp(line, "RssFile", 7) == 0)
        std::printf("%s", line);
    std::fclose(f);
  }
  return 0;
}
