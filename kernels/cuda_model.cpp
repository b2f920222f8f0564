// cuda_model: start-up (memory check, the three arenas, weights, warm-up) and the forward pass.
// The decode-step CUDA graphs live in cuda_model_graphs.cpp, the weight upload in
// cuda_model_weights.cpp.
#include "kernels/cuda_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "config/log.h"
#ifdef TROUPE_HAVE_NCCL
#include <nccl.h>
#endif

#include "kernels/activation.h"
#include "kernels/cuda_model_detail.h"
#include "kernels/embedding.h"
#include "kernels/head_norm.h"
#include "kernels/host_dtype.h"
#include "kernels/norm.h"
#include "kernels/rotary.h"
#include "kernels/skinny_gemm.h"

namespace troupe {
namespace {

using namespace cuda_model_detail;

int64_t tokens_per_step(const cuda_model_options& o) {
  return std::max<int64_t>(o.max_prefill_token_num, o.max_batch_size);
}

int64_t blocks_per_seq(const model_config& cfg, const cuda_model_options& o) {
  const int64_t len = o.session_len > 0 ? o.session_len : std::max<int64_t>(cfg.max_position_embeddings, 1);
  return (len + o.block_seq_len - 1) / o.block_seq_len;
}

// int32 entries of the per-step metadata: token ids, positions, slots, logit rows (T each), the
// attention seqs (4 per seq) and work items (2 per item, at most T + B), the block tables, and
// 4-int alignment padding of each of the 7 sections.
int64_t meta_ints(const model_config& cfg, const cuda_model_options& o) {
  const int64_t T = tokens_per_step(o), B = o.max_batch_size;
  return 4 * T + 4 * B + 2 * (T + B) + B * blocks_per_seq(cfg, o) + 7 * 4;
}

// Reserve without split-K partials.
uint64_t base_reserve_bytes(const model_config& cfg, const cuda_model_options& o) {
  const model_dims d(cfg);
  const uint64_t T = tokens_per_step(o), act = 2;
  uint64_t r = 0;
  for (uint64_t width : {d.H, d.H, d.qkv, d.Hq * d.D, 2 * d.I, d.I}) r += align_up(T * width * act);
  r += align_up(static_cast<uint64_t>(o.max_batch_size) * d.V * 4);
  r += align_up(d.D / 2 * 4) * (cfg.layer_sliding.empty() ? 1 : 2);  // local layers' own rope base
  r += align_up(meta_ints(cfg, o) * 4);
  r += kCublasWorkspace;
  return r + 2 * kAlign + device_sampling::bytes(o.max_batch_size);  // partials' alignment; sampling rows
}

}  // namespace

uint64_t cuda_model::reserve_bytes_needed(const model_config& cfg, const cuda_model_options& o) {
  const uint64_t partial = static_cast<uint64_t>(o.max_batch_size) * cfg.num_heads * std::max(o.max_splits, 1) *
                           (cfg.head_dim + 2) * 4;
  return base_reserve_bytes(cfg, o) + (o.max_splits > 1 ? partial : 0);
}

cuda_model_options cuda_model::options_from_plan(const memory_plan& plan, const engine_options& engine) {
  cuda_model_options o;
  o.dtype = plan.dtype == "float16" ? kernel_dtype::f16 : kernel_dtype::bf16;
  o.dummy_weights = engine.model.load_format == "dummy";
  o.block_seq_len = static_cast<int32_t>(plan.block_seq_len);
  o.num_kv_blocks = plan.num_blocks;
  o.reserve_bytes = plan.ranks.empty() ? 0 : plan.ranks.front().reserve_bytes;
  o.max_batch_size = plan.max_batch_size;
  o.max_prefill_token_num = plan.max_prefill_token_num;
  o.session_len = plan.session_len;
  o.cuda_graphs = !engine.enforce_eager;
  return o;
}

result<std::unique_ptr<cuda_model>> cuda_model::create(const model_config& cfg, const weight_source* weights,
                                                       const cuda_model_options& opts) {
  std::unique_ptr<cuda_model> m(new cuda_model());
  TROUPE_TRY(m->init(cfg, weights, opts));
  return m;
}

cuda_model::~cuda_model() {
  if (stream_) cudaStreamSynchronize(stream_);
  for (decode_graph& g : graphs_)
    if (g.exec) cudaGraphExecDestroy(g.exec);
  if (host_meta_) cudaFreeHost(host_meta_);
  if (host_logits_) cudaFreeHost(host_logits_);
  if (stream_) cudaStreamDestroy(stream_);
}

status cuda_model::init(const model_config& cfg, const weight_source* weights, const cuda_model_options& opts) {
  cfg_ = cfg;
  opts_ = opts;
  const model_dims d(cfg);
  if (d.V <= 0 || d.H <= 0 || d.I <= 0 || d.L <= 0 || d.Hq <= 0 || d.Hkv <= 0 || d.Hq % d.Hkv != 0)
    return make_error(errc::invalid_argument, "cuda_model: invalid model shape");
  if (!attention_head_dim_supported(d.D))
    return make_error(errc::unsupported, "cuda_model: head_dim " + std::to_string(d.D) +
                                             " is not supported by the CUDA attention (16, 32, 48, 64, 96, 128, 256)");
  if (opts.block_seq_len <= 0 || opts.max_batch_size <= 0 || opts.max_prefill_token_num <= 0)
    return make_error(errc::invalid_argument, "cuda_model: block_seq_len, max_batch_size and "
                                              "max_prefill_token_num must be positive");
  if (!opts.dummy_weights && !weights)
    return make_error(errc::invalid_argument, "cuda_model: no weights given and load format is not dummy");
  if (cfg.qk_norm && cfg.attention_bias)  // the head norm runs before the kernel that adds the bias
    return make_error(errc::unsupported, "cuda_model: q/k norms with a q/k/v bias are not supported");
  if (cfg.sandwich_norms != gemma_norm_form(cfg))  // the two come together (Gemma 3) or not at all
    return make_error(errc::unsupported, "cuda_model: sandwich norms without Gemma's (1 + w) norm form (architecture '" +
                                             cfg.architecture + "') are not supported");

  TROUPE_CUDA_TRY(cudaSetDevice(opts.device), "cudaSetDevice");
  cudaDeviceProp prop{};
  TROUPE_CUDA_TRY(cudaGetDeviceProperties(&prop, opts.device), "cudaGetDeviceProperties");
  num_sms_ = prop.multiProcessorCount;
  TROUPE_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");

  max_tokens_ = tokens_per_step(opts);
  max_blocks_per_seq_ = blocks_per_seq(cfg, opts);
  logit_rows_ = opts.max_batch_size;
  meta_ints_ = meta_ints(cfg, opts);
  tables_off_ = (meta_ints_ - opts.max_batch_size * max_blocks_per_seq_) / 4 * 4;  // the last section
  table_rows_.reserve(static_cast<size_t>(opts.max_batch_size));

  // Sizes first, then one check against the free memory, then the three allocations.
  const bool has_bias =
      cfg.attention_bias || (weights && weights->find(layer_name(0, "self_attn.q_proj.bias")) != nullptr);
  const bool tied = cfg.tie_word_embeddings || (weights && !weights->find("lm_head.weight"));
  const uint64_t e = 2;
  uint64_t wbytes = align_up(d.V * d.H * e) + align_up(d.H * e) + (tied ? 0 : align_up(d.V * d.H * e));
  wbytes += d.L * (2 * align_up(d.H * e) + align_up(d.qkv * d.H * e) + (has_bias ? align_up(d.qkv * e) : 0) +
                   align_up(d.H * d.Hq * d.D * e) + align_up(2 * d.I * d.H * e) + align_up(d.H * d.I * e) +
                   (cfg.qk_norm ? 2 * align_up(d.D * e) : 0) + (cfg.sandwich_norms ? 2 * align_up(d.H * e) : 0));
  const uint64_t needed = base_reserve_bytes(cfg, opts);
  const uint64_t rbytes = opts.reserve_bytes ? opts.reserve_bytes : reserve_bytes_needed(cfg, opts);
  if (rbytes < needed)
    return make_error(errc::out_of_memory, "cuda_model: the plan's runtime reserve (" + format_bytes(rbytes) +
                                               ") is below what the CUDA forward pass carves (" +
                                               format_bytes(needed) + "); lower --max-prefill-token-num or "
                                                                      "--max-batch-size");
  kv_layout_.num_layers = static_cast<int32_t>(d.L);
  kv_layout_.num_kv_heads = static_cast<int32_t>(d.Hkv);
  kv_layout_.block_seq_len = opts.block_seq_len;
  kv_layout_.head_dim = static_cast<int32_t>(d.D);
  const uint64_t block_bytes = paged_kv_block_bytes(kv_layout_, opts.dtype);
  size_t free_b = 0, total_b = 0;
  TROUPE_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  int64_t blocks = opts.num_kv_blocks;
  if (blocks <= 0) {
    const uint64_t left = free_b > wbytes + rbytes ? free_b - wbytes - rbytes : 0;
    blocks = static_cast<int64_t>(static_cast<double>(left) * opts.kv_fraction) / static_cast<int64_t>(block_bytes);
  }
  const uint64_t kbytes = static_cast<uint64_t>(blocks) * block_bytes;
  if (blocks <= 0 || wbytes + rbytes + kbytes > free_b)
    return make_error(errc::out_of_memory,
                      "cuda_model: weights " + format_bytes(wbytes) + " + reserve " + format_bytes(rbytes) +
                          " + KV " + format_bytes(kbytes) + " (" + std::to_string(blocks) + " blocks) do not fit in " +
                          format_bytes(free_b) + " free of " + format_bytes(total_b) +
                          "; lower --cache-max-entry-count or the batch limits");
  logger("kernels")->info("cuda_model on {} ({} SMs): weights {}, reserve {}, KV {} ({} blocks of {} tokens), {} free",
                          prop.name, num_sms_, format_bytes(wbytes), format_bytes(rbytes), format_bytes(kbytes), blocks,
                          opts.block_seq_len, format_bytes(free_b));

  auto w = device_arena::create("weights", wbytes);
  if (!w) return w.err();
  weights_ = std::move(*w);
  auto r = device_arena::create("reserve", rbytes);
  if (!r) return r.err();
  reserve_ = std::move(*r);
  auto k = device_arena::create("kv", kbytes);
  if (!k) return k.err();
  kv_ = std::move(*k);
  kv_layout_.pool = kv_.base();
  kv_layout_.num_blocks = blocks;
  TROUPE_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&host_meta_), meta_ints_ * sizeof(int32_t)), "cudaMallocHost (step metadata)");

  TROUPE_TRY(carve_reserve());
  TROUPE_TRY(gemm_.init(stream_, buf_.cublas_ws, kCublasWorkspace));
  TROUPE_TRY(allocate_weights(opts.dummy_weights ? nullptr : weights));
  const std::vector<float> inv_freq = rotary_inv_freq(cfg.rope, d.D);
  TROUPE_CUDA_TRY(cudaMemcpyAsync(buf_.inv_freq, inv_freq.data(), inv_freq.size() * 4, cudaMemcpyHostToDevice, stream_),
                  "upload inv_freq");
  if (buf_.inv_freq_local) {
    const std::vector<float> local = rotary_inv_freq(cfg.rope_local, d.D);
    TROUPE_CUDA_TRY(cudaMemcpyAsync(buf_.inv_freq_local, local.data(), local.size() * 4, cudaMemcpyHostToDevice, stream_),
                    "upload local inv_freq");
  }
  if (opts.warm_up) TROUPE_TRY(run_warm_up());
  TROUPE_TRY(capture_decode_graphs());
  return cuda_status(cudaStreamSynchronize(stream_), "cuda_model start-up");
}

status cuda_model::carve_reserve() {
  const model_dims d(cfg_);
  const uint64_t T = max_tokens_, e = 2;
  auto take = [&](uint64_t bytes, void** out) -> status {
    auto p = reserve_.allocate(bytes, kAlign);
    if (!p) return p.err();
    *out = *p;
    return ok_status();
  };
  TROUPE_TRY(take(T * d.H * e, &buf_.residual));
  TROUPE_TRY(take(T * d.H * e, &buf_.h));
  TROUPE_TRY(take(T * d.qkv * e, &buf_.qkv));
  TROUPE_TRY(take(T * d.Hq * d.D * e, &buf_.attn));
  TROUPE_TRY(take(T * 2 * d.I * e, &buf_.gate_up));
  TROUPE_TRY(take(T * d.I * e, &buf_.act));
  TROUPE_TRY(take(logit_rows_ * d.V * 4, reinterpret_cast<void**>(&buf_.logits)));
  TROUPE_TRY(take(d.D / 2 * 4, reinterpret_cast<void**>(&buf_.inv_freq)));
  if (!cfg_.layer_sliding.empty()) TROUPE_TRY(take(d.D / 2 * 4, reinterpret_cast<void**>(&buf_.inv_freq_local)));
  TROUPE_TRY(take(meta_ints_ * 4, reinterpret_cast<void**>(&buf_.meta)));
  TROUPE_TRY(take(kCublasWorkspace, &buf_.cublas_ws));
  TROUPE_TRY(init_sampling());  // rank 0's sampling rows, and the pinned logits rows
  // Whatever is left holds split-K partials: (D + 2) floats per (token, head, split).
  const uint64_t left = reserve_.capacity() - reserve_.used();
  const uint64_t cap_max = static_cast<uint64_t>(opts_.max_batch_size) * d.Hq * std::max(opts_.max_splits, 1);
  partial_capacity_ = static_cast<int64_t>(std::min<uint64_t>(cap_max, left > 2 * kAlign ? (left - 2 * kAlign) / ((d.D + 2) * 4) : 0));
  if (partial_capacity_ > 0) {
    TROUPE_TRY(take(partial_capacity_ * d.D * 4, reinterpret_cast<void**>(&buf_.partial_o)));
    TROUPE_TRY(take(partial_capacity_ * 2 * 4, reinterpret_cast<void**>(&buf_.partial_ml)));
  }
  return ok_status();
}

// Design note: the step's metadata is packed into one pinned buffer (sections 16-byte aligned),
// uploaded with one copy; the block tables are not in it: they persist on the device
// (cuda_model_step_input.cpp) and each sequence names its row (attention_seq::table_row).
status cuda_model::forward(const step_batch& batch, step_logits& out) {
  TROUPE_CUDA_TRY(cudaSetDevice(opts_.device), "cudaSetDevice");  // the executor's thread, not the loader's
  TROUPE_TRY(validate(batch));
  TROUPE_TRY(stage_block_tables(batch));
  out.row_seq.clear();
  out.data.clear();
  out.prompt.clear();
  out.vocab_size = cfg_.vocab_size;
  if (const decode_graph* g = graph_for(batch)) return run_decode_graph(*g, batch, out);
  const int64_t T = batch.num_tokens();
  const int32_t nseq = static_cast<int32_t>(batch.seqs.size());
  if (T == 0) return ok_status();

  int64_t off = 0;
  auto take = [&](int64_t n) {
    const int64_t o = off;
    off += (n + 3) / 4 * 4;
    return o;
  };
  seqs_host_.resize(nseq);
  std::vector<int32_t> rows;
  int32_t row = 0;
  for (int32_t i = 0; i < nseq; ++i) {
    const auto& s = batch.seqs[i];
    const int32_t n = static_cast<int32_t>(s.tokens.size());
    seqs_host_[i] = {row, n, s.start_pos, table_rows_[static_cast<size_t>(i)]};
    for (int32_t t = 0; t < n; ++t)
      if (s.want_all_logits || (s.want_logits && t == n - 1)) {
        rows.push_back(row + t);
        out.row_seq.push_back(i);
      }
    row += n;
  }
  const attention_schedule_options so = schedule_options();
  make_attention_schedule(seqs_host_.data(), nseq, so, schedule_);

  const int64_t tok_off = take(T), pos_off = take(T), slot_off = take(T), rows_off = take(rows.size());
  const int64_t seq_off = take(4 * nseq), work_off = take(2 * schedule_.work.size());
  if (off > tables_off_) return make_error(errc::internal, "step metadata exceeds its reserve");
  int32_t* h = host_meta_;
  const int64_t bs = kv_layout_.block_seq_len;
  int64_t t = 0;
  for (int32_t i = 0; i < nseq; ++i) {
    const auto& s = batch.seqs[i];
    const int32_t* table = block_table_of(batch, static_cast<size_t>(i)).data();
    for (size_t j = 0; j < s.tokens.size(); ++j, ++t) {
      const int64_t p = s.start_pos + static_cast<int64_t>(j);
      h[tok_off + t] = s.tokens[j];
      h[pos_off + t] = static_cast<int32_t>(p);
      h[slot_off + t] = static_cast<int32_t>(table[p / bs] * bs + p % bs);
    }
  }
  std::copy(rows.begin(), rows.end(), h + rows_off);
  std::memcpy(h + seq_off, seqs_host_.data(), nseq * sizeof(attention_seq));
  std::memcpy(h + work_off, schedule_.work.data(), schedule_.work.size() * sizeof(attention_work));
  TROUPE_CUDA_TRY(cudaMemcpyAsync(buf_.meta, h, off * 4, cudaMemcpyHostToDevice, stream_), "upload step metadata");

  paged_attention_args attn;
  attn.out = buf_.attn;
  attn.q = buf_.qkv;
  attn.q_stride = (cfg_.num_heads + 2 * cfg_.num_kv_heads) * cfg_.head_dim;
  attn.cache = kv_layout_;
  attn.block_tables = buf_.meta + tables_off_;  // the persistent table (stage_block_tables)
  attn.max_blocks_per_seq = static_cast<int32_t>(max_blocks_per_seq_);
  attn.tables_by_row = true;
  attn.seqs = reinterpret_cast<const attention_seq*>(buf_.meta + seq_off);
  attn.work = reinterpret_cast<const attention_work*>(buf_.meta + work_off);
  attn.num_tokens = T;
  attn.num_heads = static_cast<int32_t>(cfg_.num_heads);
  attn.set_schedule(schedule_);
  attn.partial_o = buf_.partial_o;
  attn.partial_ml = buf_.partial_ml;
  attn.dtype = opts_.dtype;
  TROUPE_TRY(run_layers(T, buf_.meta + tok_off, buf_.meta + pos_off, buf_.meta + slot_off, attn));
  if (opts_.tp_rank == 0) {  // other TP ranks: no rows
    TROUPE_TRY(run_lm_head(rows, buf_.meta + rows_off, out));
    TROUPE_TRY(run_prompt_scoring(batch, out));
  } else {
    out.row_seq.clear();
  }
  return cuda_status(cudaStreamSynchronize(stream_), "forward step");
}

status cuda_model::run_layers(int64_t T, const int32_t* d_tokens, const int32_t* d_pos, const int32_t* d_slots,
                              const paged_attention_args& attn_template) {
  const model_dims d(cfg_);
  const kernel_dtype dt = opts_.dtype;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const bool gemma = gemma_norm_form(cfg_);
  // Gemma: the residual stream starts as embeddings times √hidden; the attention scale is
  // 1/√query_pre_attn_scalar.
  const float embed_scale = static_cast<float>(cfg_.embed_scale);
  const float qscale = cfg_.query_pre_attn_scalar > 0 ? static_cast<float>(1.0 / std::sqrt(cfg_.query_pre_attn_scalar)) : 0.f;
  TROUPE_CUDA_TRY(launch_gather_rows({buf_.residual, embed_, d_tokens, T, d.V, d.H, dt, embed_scale}, stream_),
                  "embedding");
  for (int64_t i = 0; i < d.L; ++i) {
    const layer_weights& l = layers_[i];
    if (i == 0)
      TROUPE_CUDA_TRY(launch_rms_norm({buf_.h, buf_.residual, l.input_norm, T, d.H, eps, dt, gemma}, stream_),
                      "rms_norm");
    else
      TROUPE_CUDA_TRY(
          launch_fused_add_rms_norm({buf_.h, buf_.residual, buf_.h, l.input_norm, T, d.H, eps, dt, gemma}, stream_),
          "fused_add_rms_norm");
    gemm_args g;
    g.dtype = dt;
    g.m = T;
    g.y = buf_.qkv, g.x = buf_.h, g.w = l.qkv, g.n = d.qkv, g.k = d.H;
    TROUPE_TRY(matmul(g));
    if (l.q_norm) {  // Qwen3, Gemma 3: per-head RMSNorm of q and k before rotary
      head_rms_norm_args hn;
      hn.qkv = buf_.qkv;
      hn.q_weight = l.q_norm;
      hn.k_weight = l.k_norm;
      hn.num_tokens = T;
      hn.num_heads = static_cast<int32_t>(d.Hq);
      hn.num_kv_heads = static_cast<int32_t>(d.Hkv);
      hn.head_dim = static_cast<int32_t>(d.D);
      hn.eps = eps;
      hn.weight_offset = gemma ? 1.f : 0.f;
      hn.dtype = dt;
      TROUPE_CUDA_TRY(launch_head_rms_norm(hn, stream_), "head_rms_norm");
    }
    const int32_t window = static_cast<int32_t>(cfg_.layer_window(i));
    rotary_args r;
    r.qkv = buf_.qkv;
    r.bias = l.qkv_bias;
    r.positions = d_pos;
    r.inv_freq = buf_.inv_freq_local && window > 0 ? buf_.inv_freq_local : buf_.inv_freq;
    r.num_tokens = T;
    r.num_heads = static_cast<int32_t>(d.Hq);
    r.num_kv_heads = static_cast<int32_t>(d.Hkv);
    r.head_dim = static_cast<int32_t>(d.D);
    r.dtype = dt;
    r.slots = d_slots;  // K and V into the paged cache in the same pass
    r.cache = kv_layout_;
    r.layer = static_cast<int32_t>(i);
    TROUPE_CUDA_TRY(launch_rotary(r, stream_), "rotary + KV append");
    paged_attention_args a = attn_template;
    a.layer = static_cast<int32_t>(i);
    // LongRoPE scales cos and sin by attention_factor, so q.k by its square: folded into the scale.
    if (cfg_.rope.attention_factor != 1.0)
      a.scale = static_cast<float>(cfg_.rope.attention_factor * cfg_.rope.attention_factor /
                                   std::sqrt(static_cast<double>(d.D)));
    if (qscale > 0) a.scale = qscale;
    a.window = window;
    TROUPE_CUDA_TRY(launch_paged_attention(a, stream_), "paged_attention");
    g.y = buf_.h, g.x = buf_.attn, g.w = l.o, g.n = d.H, g.k = d.Hq * d.D;
    TROUPE_TRY(matmul(g));
    TROUPE_TRY(all_reduce_hidden(T));
    if (l.attn_out_norm)  // Gemma: the attention output is normed before it joins the residual
      TROUPE_CUDA_TRY(launch_rms_norm({buf_.h, buf_.h, l.attn_out_norm, T, d.H, eps, dt, gemma}, stream_),
                      "post-attention rms_norm");
    TROUPE_CUDA_TRY(
        launch_fused_add_rms_norm({buf_.h, buf_.residual, buf_.h, l.post_norm, T, d.H, eps, dt, gemma}, stream_),
        "fused_add_rms_norm");
    g.y = buf_.gate_up, g.x = buf_.h, g.w = l.gate_up, g.n = 2 * d.I, g.k = d.H;
    TROUPE_TRY(matmul(g));
    TROUPE_CUDA_TRY(launch_silu_and_mul({buf_.act, buf_.gate_up, T, d.I, dt, cfg_.gelu_tanh_mlp}, stream_),
                    "mlp activation");
    g.y = buf_.h, g.x = buf_.act, g.w = l.down, g.n = d.H, g.k = d.I;
    TROUPE_TRY(matmul(g));
    TROUPE_TRY(all_reduce_hidden(T));
    if (l.mlp_out_norm)
      TROUPE_CUDA_TRY(launch_rms_norm({buf_.h, buf_.h, l.mlp_out_norm, T, d.H, eps, dt, gemma}, stream_),
                      "post-MLP rms_norm");
  }
  return cuda_status(
      launch_fused_add_rms_norm({buf_.h, buf_.residual, buf_.h, final_norm_, T, d.H, eps, dt, gemma}, stream_),
      "final norm");
}

// The split-K bounds of this device and reserve (the step's sequences decide the rest).
attention_schedule_options cuda_model::schedule_options() const {
  attention_schedule_options so;
  so.num_heads = static_cast<int32_t>(cfg_.num_heads);
  so.num_kv_heads = static_cast<int32_t>(cfg_.num_kv_heads);
  so.num_sms = num_sms_;
  so.max_splits = partial_capacity_ > 0 ? opts_.max_splits : 1;
  so.partial_capacity = partial_capacity_;
  return so;
}

// Decode-sized products (m <= skinny_gemm_rows) stream the weights through the skinny kernel; the rest go to cuBLAS.
status cuda_model::matmul(const gemm_args& g) {
  if (g.m <= opts_.skinny_gemm_rows && skinny_gemm_supported(g)) {
    gemm_args s = g;
    s.programmatic_launch = opts_.programmatic_launch;
    return cuda_status(launch_skinny_gemm(s, stream_), "skinny_gemm");
  }
  return gemm_.run(g);
}

status cuda_model::softcap_logits(int64_t rows) {
  if (!(cfg_.final_logit_softcapping > 0)) return ok_status();
  return cuda_status(launch_softcap(buf_.logits, rows * cfg_.vocab_size, static_cast<float>(cfg_.final_logit_softcapping),
                                    stream_),
                     "logit soft-capping");
}

status cuda_model::all_reduce_hidden(int64_t T) {
  if (!opts_.nccl_comm) return ok_status();
#ifdef TROUPE_HAVE_NCCL
  const ncclDataType_t type = opts_.dtype == kernel_dtype::bf16 ? ncclBfloat16 : ncclFloat16;
  const ncclResult_t r = ncclAllReduce(buf_.h, buf_.h, static_cast<size_t>(T * cfg_.hidden_size), type, ncclSum,
                                       static_cast<ncclComm_t>(opts_.nccl_comm), stream_);
  if (r != ncclSuccess)
    return make_error(errc::device_error, std::string("ncclAllReduce failed: ") + ncclGetErrorString(r));
  return ok_status();
#else
  return make_error(errc::unsupported, "tensor parallelism on GPUs needs NCCL (not found at build time)");
#endif
}

// The wanted rows of the normed hidden states are gathered into the (now free) residual buffer
// and projected in chunks of logit_rows_ rows into the float32 logits buffer.
status cuda_model::run_lm_head(const std::vector<int32_t>& rows, const int32_t* d_rows, step_logits& out) {
  const model_dims d(cfg_);
  const int64_t n = static_cast<int64_t>(rows.size());
  float* dst = logits_dst_;  // forward_sampled's pinned rows, else the reply's
  if (!dst) {
    out.data.resize(static_cast<size_t>(n * d.V));
    dst = out.data.data();
  }
  for (int64_t r0 = 0; r0 < n; r0 += logit_rows_) {
    const int64_t m = std::min(logit_rows_, n - r0);
    TROUPE_CUDA_TRY(launch_gather_rows({buf_.residual, buf_.h, d_rows + r0, m, max_tokens_, d.H, opts_.dtype}, stream_),
                    "gather logit rows");
    gemm_args g;
    g.dtype = opts_.dtype;
    g.y = buf_.logits, g.x = buf_.residual, g.w = lm_head_, g.m = m, g.n = d.V, g.k = d.H;
    g.y_float32 = true;
    TROUPE_TRY(matmul(g));
    TROUPE_TRY(softcap_logits(m));
    TROUPE_TRY(deliver_logits(dst, r0, m, nullptr));  // or sampled on the device
  }
  return ok_status();
}

// Runs the largest prefill the reserve allows, then a full decode batch at a long context, so that
// every kernel, cuBLAS algorithm and split-K path is loaded before the first request. It writes
// garbage into the first blocks, which no sequence owns yet.
status cuda_model::run_warm_up() {
  const int64_t bs = kv_layout_.block_seq_len;
  const int64_t len = std::min<int64_t>(max_tokens_, std::min<int64_t>(kv_layout_.num_blocks, max_blocks_per_seq_) * bs);
  if (len <= 0) return ok_status();
  step_batch b;
  seq_step s;
  s.tokens.assign(static_cast<size_t>(len), 0);
  for (int64_t i = 0; i < (len + bs - 1) / bs; ++i) s.block_table.push_back(static_cast<int32_t>(i));
  b.seqs.push_back(s);
  step_logits out;
  TROUPE_TRY(forward(b, out));
  b.seqs.clear();
  const int64_t ctx = len - 1;
  for (int32_t i = 0; i < opts_.max_batch_size; ++i) {
    seq_step dseq;
    dseq.tokens = {0};
    dseq.start_pos = static_cast<int32_t>(ctx);
    dseq.block_table = s.block_table;
    b.seqs.push_back(dseq);
  }
  TROUPE_TRY(forward(b, out));
  b.seqs.resize(1);
  return forward(b, out);
}

}  // namespace troupe
