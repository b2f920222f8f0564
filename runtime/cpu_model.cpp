// cpu_model: the Llama-family forward pass over a step_batch on the CPU, in float32, with a paged
// KV pool addressed through each sequence's block table. Kernels: cpu_matmul.cpp, cpu_kernels.cpp.
#include "runtime/cpu_model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <new>

#include "config/log.h"
#include "runtime/cpu_attention.h"
#include "runtime/cpu_kernels.h"
#include "runtime/host_memory.h"
#include "runtime/prompt_logprobs.h"

namespace troupe {
namespace {

status check_weights(const model_config& c, const model_weights& w) {
  const size_t h = static_cast<size_t>(c.hidden_size), q = static_cast<size_t>(c.q_size()),
               kv = static_cast<size_t>(c.kv_size()), inter = static_cast<size_t>(c.intermediate_size),
               vocab = static_cast<size_t>(c.vocab_size);
  auto bad = [&](const std::string& what) {
    return make_error(errc::invalid_argument, "weights do not match the config of '" + c.name + "': " + what);
  };
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0 || c.head_dim <= 0 ||
      c.head_dim % 2 != 0 || c.num_heads % c.num_kv_heads != 0)
    return bad("bad head/size configuration");
  auto shape_is = [](const weight_matrix& m, size_t rows, size_t cols) {
    return static_cast<size_t>(m.rows) == rows && static_cast<size_t>(m.cols) == cols && m.storage_ok();
  };
  if (!shape_is(w.embed, vocab, h)) return bad("embed_tokens");
  if (w.final_norm.size() != h) return bad("norm");
  if (!w.lm_head.empty() && !shape_is(w.lm_head, vocab, h)) return bad("lm_head");
  if (w.lm_head.empty() && !c.tie_word_embeddings) return bad("lm_head missing and embeddings not tied");
  if (w.layers.size() != static_cast<size_t>(c.num_layers)) return bad("layer count");
  for (const auto& l : w.layers) {
    if (l.attn_norm.size() != h || l.mlp_norm.size() != h || !shape_is(l.w_qkv, q + 2 * kv, h) ||
        (!l.b_qkv.empty() && l.b_qkv.size() != q + 2 * kv) || !shape_is(l.w_o, h, q) ||
        !shape_is(l.w_gate_up, 2 * inter, h) || !shape_is(l.w_down, h, inter))
      return bad("a decoder layer's tensor shapes");
    if (c.qk_norm && (l.q_norm.size() != static_cast<size_t>(c.head_dim) || l.k_norm.size() != static_cast<size_t>(c.head_dim)))
      return bad("q_norm/k_norm");
    if (c.sandwich_norms && (l.post_attn_norm.size() != h || l.post_mlp_norm.size() != h))
      return bad("post-attention/post-feedforward norms");
  }
  return ok_status();
}

void add_in_place(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

cpu_model::cpu_model(model_config cfg, model_weights weights, const cpu_model_options& opts)
    : cfg_(std::move(cfg)),
      w_(std::move(weights)),
      num_blocks_(opts.num_kv_blocks),
      block_seq_len_(opts.block_seq_len),
      block_stride_(cfg_.num_layers * 2 * cfg_.num_kv_heads * opts.block_seq_len * cfg_.head_dim),
      kv_dtype_(opts.kv_dtype),
      inv_freq_(rope_inv_freq(cfg_.rope, cfg_.head_dim)),
      inv_freq_local_(cfg_.layer_sliding.empty() ? std::vector<float>{} : rope_inv_freq(cfg_.rope_local, cfg_.head_dim)),
      pool_(std::make_unique<cpu_thread_pool>(opts.num_threads)),
      comm_(opts.comm),
      tp_rank_(opts.tp_rank) {}

result<std::unique_ptr<cpu_model>> cpu_model::create(model_config cfg, model_weights weights,
                                                     const cpu_model_options& opts) {
  TROUPE_TRY(check_weights(cfg, weights));
  if (opts.num_kv_blocks <= 0 || opts.block_seq_len <= 0)
    return make_error(errc::invalid_argument, "cpu_model needs num_kv_blocks > 0 and block_seq_len > 0");
  if (opts.comm && (opts.tp_rank < 0 || opts.tp_rank >= opts.comm->world()))
    return make_error(errc::invalid_argument, "cpu_model: tensor-parallel rank outside the group");
  if (opts.kv_dtype != weight_dtype::f32 && opts.kv_dtype != weight_dtype::f16)
    return make_error(errc::invalid_argument, std::string("cpu_model: KV cache dtype ") +
                                                  weight_dtype_name(opts.kv_dtype) + " is not supported (float32, float16)");
  std::unique_ptr<cpu_model> m(new cpu_model(std::move(cfg), std::move(weights), opts));
  advise_huge_pages(m->w_);  // 2 MiB pages: decode streams every weight once per step
  const int64_t floats = (m->kv_pool_bytes() + 3) / 4;
  auto kv = host_buffer::allocate(static_cast<size_t>(floats));
  if (!kv)
    return make_error(errc::out_of_memory, "cannot allocate the CPU KV pool: " + std::to_string(m->num_blocks_) +
                                               " blocks of " + std::to_string(m->block_bytes()) + " bytes");
  m->kv_ = std::move(*kv);
  // Attention scratch per thread, sized once for the longest context a sequence can have here (the
  // pool's tokens, capped by the model's positions); a longer one falls back to a grown buffer.
  int64_t max_context = m->num_blocks_ * m->block_seq_len_;
  if (m->cfg_.max_position_embeddings > 0) max_context = std::min(max_context, m->cfg_.max_position_embeddings);
  paged_kv_view shape;
  shape.block_seq_len = m->block_seq_len_;
  shape.head_dim = m->cfg_.head_dim;
  m->attn_scratch_per_thread_ = attention_tile_scratch_floats(
      kAttentionTileRows * (m->cfg_.num_heads / m->cfg_.num_kv_heads), max_context + kAttentionTileRows - 1, shape);
  m->attn_scratch_.resize(static_cast<size_t>(m->attn_scratch_per_thread_ * m->pool_->num_threads()));
  logger("runtime")->info("cpu_model '{}': {} layers, weights {:.1f} MiB ({}), KV pool {} blocks x {} tokens ({:.1f} MiB {}), {} threads",
                          m->cfg_.name, m->cfg_.num_layers, m->w_.num_bytes() / 1048576.0,
                          weight_dtype_name(m->w_.layers[0].w_qkv.dtype), m->num_blocks_,
                          m->block_seq_len_, m->kv_pool_bytes() / 1048576.0, weight_dtype_name(m->kv_dtype_),
                          m->pool_->num_threads());
  return m;
}

status cpu_model::check_batch(const step_batch& batch) const {
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const seq_step& s = batch.seqs[i];
    const std::span<const int32_t> table = block_table_of(batch, i);
    auto bad = [&](const std::string& what) {
      return make_error(errc::invalid_argument, "step for seq " + std::to_string(s.seq_id) + ": " + what);
    };
    if (s.tokens.empty()) return bad("no tokens");
    if (s.start_pos < 0) return bad("negative start_pos");
    for (int32_t t : s.tokens)
      if (t < 0 || t >= cfg_.vocab_size)
        return bad("token " + std::to_string(t) + " outside the vocabulary [0, " + std::to_string(cfg_.vocab_size) + ")");
    if (s.next_token >= cfg_.vocab_size || s.prompt_logprobs > 1024)
      return bad("next_token or prompt_logprobs out of range");
    const int64_t end = static_cast<int64_t>(s.start_pos) + static_cast<int64_t>(s.tokens.size());
    const int64_t needed = (end + block_seq_len_ - 1) / block_seq_len_;
    if (static_cast<int64_t>(table.size()) < needed)
      return bad("block table has " + std::to_string(table.size()) + " blocks, positions up to " +
                 std::to_string(end) + " need " + std::to_string(needed));
    for (int64_t b = 0; b < needed; ++b)
      if (table[b] < 0 || table[b] >= num_blocks_)
        return bad("block id " + std::to_string(table[b]) + " outside [0, " + std::to_string(num_blocks_) + ")");
  }
  return ok_status();
}

void cpu_model::prepare_tokens(const step_batch& batch) {
  const int64_t n = batch.num_tokens(), hd = cfg_.head_dim, half = hd / 2, hidden = cfg_.hidden_size;
  tok_seq_.resize(n);
  tok_pos_.resize(n);
  cos_.resize(n * half);
  sin_.resize(n * half);
  const bool local_rope = !inv_freq_local_.empty();
  cos_local_.resize(local_rope ? n * half : 0);
  sin_local_.resize(local_rope ? n * half : 0);
  const float embed_scale = static_cast<float>(cfg_.embed_scale);
  x_.resize(n * hidden);
  h_.resize(n * hidden);
  qkv_.resize(n * (cfg_.q_size() + 2 * cfg_.kv_size()));
  attn_.resize(n * cfg_.q_size());
  gate_up_.resize(n * 2 * cfg_.intermediate_size);
  act_.resize(n * cfg_.intermediate_size);
  int64_t t = 0;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const seq_step& s = batch.seqs[i];
    for (size_t j = 0; j < s.tokens.size(); ++j, ++t) {
      tok_seq_[t] = static_cast<int32_t>(i);
      tok_pos_[t] = s.start_pos + static_cast<int32_t>(j);
      rope_cos_sin(inv_freq_, tok_pos_[t], cos_.data() + t * half, sin_.data() + t * half);
      if (cfg_.rope.attention_factor != 1.0) {  // LongRoPE scales cos and sin, as transformers does
        const float af = static_cast<float>(cfg_.rope.attention_factor);
        for (int64_t i = 0; i < half; ++i) cos_[t * half + i] *= af, sin_[t * half + i] *= af;
      }
      if (local_rope) rope_cos_sin(inv_freq_local_, tok_pos_[t], cos_local_.data() + t * half, sin_local_.data() + t * half);
      w_.embed.row_f32(s.tokens[j], x_.data() + t * hidden);
      if (embed_scale != 0)
        for (int64_t i = 0; i < hidden; ++i) x_[t * hidden + i] *= embed_scale;
    }
  }
}

void cpu_model::attention_layer(const step_batch& batch, int64_t layer) {
  const int64_t n = static_cast<int64_t>(tok_seq_.size());
  const int64_t hd = cfg_.head_dim, half = hd / 2, nh = cfg_.num_heads, nkv = cfg_.num_kv_heads;
  const int64_t q_size = cfg_.q_size(), kv_size = cfg_.kv_size(), row = q_size + 2 * kv_size;
  const int64_t head_stride = block_seq_len_ * hd;           // elements per [block_seq_len, head_dim]
  const int64_t layer_off = layer * 2 * nkv * head_stride;   // K of this layer inside a block
  const int64_t v_off = nkv * head_stride;                   // V after K

  // Per-head q/k norms (Qwen3, Gemma 3), rotary on q and k (the local layers' own base), then append k and
  // v at each token's slot.
  const layer_weights& lw = w_.layers[static_cast<size_t>(layer)];
  const int64_t window = cfg_.layer_window(layer);
  const bool local_rope = !inv_freq_local_.empty() && window > 0;
  const std::vector<float>& cos_tab = local_rope ? cos_local_ : cos_;
  const std::vector<float>& sin_tab = local_rope ? sin_local_ : sin_;
  for (int64_t t = 0; t < n; ++t) {
    float* q = qkv_.data() + t * row;
    if (cfg_.qk_norm) {
      rmsnorm(q, lw.q_norm.data(), nh, hd, cfg_.rms_norm_eps, q);
      rmsnorm(q + q_size, lw.k_norm.data(), nkv, hd, cfg_.rms_norm_eps, q + q_size);
    }
    rope_apply(q, nh, hd, cos_tab.data() + t * half, sin_tab.data() + t * half);
    rope_apply(q + q_size, nkv, hd, cos_tab.data() + t * half, sin_tab.data() + t * half);
    const int64_t pos = tok_pos_[t];
    const int32_t* table = block_table_of(batch, static_cast<size_t>(tok_seq_[t])).data();
    const int64_t block = static_cast<int64_t>(table[pos / block_seq_len_]) * block_stride_;
    for (int64_t g = 0; g < nkv; ++g) {
      const int64_t slot = block + layer_off + g * head_stride + (pos % block_seq_len_) * hd;
      const float* k = q + q_size + g * hd;
      const float* v = q + q_size + kv_size + g * hd;
      if (kv_dtype_ == weight_dtype::f16) {
        uint16_t* p = reinterpret_cast<uint16_t*>(kv_.data()) + slot;
        f32_to_f16_row(k, p, hd);
        f32_to_f16_row(v, p + v_off, hd);
      } else {
        std::copy_n(k, hd, kv_.data() + slot);
        std::copy_n(v, hd, kv_.data() + slot + v_off);
      }
    }
  }

  const double scalar = cfg_.query_pre_attn_scalar > 0 ? cfg_.query_pre_attn_scalar : static_cast<double>(hd);
  const float scale = static_cast<float>(1.0 / std::sqrt(scalar));
  const int64_t group = nh / nkv;
  paged_kv_view base;
  if (kv_dtype_ == weight_dtype::f16) base.pool_f16 = reinterpret_cast<const uint16_t*>(kv_.data());
  else base.pool = kv_.data();
  base.block_stride = block_stride_;
  base.block_seq_len = block_seq_len_;
  base.head_dim = hd;

  // Work items: tiles of up to kAttentionTileRows consecutive tokens of one sequence × one KV head's
  // query heads. A step too small to keep every thread busy with whole groups splits the groups
  // into single heads (the arithmetic per row does not depend on the tiling).
  const int64_t nthreads = pool_->num_threads();
  int64_t num_tiles = 0;
  for (const auto& s : batch.seqs)
    num_tiles += (static_cast<int64_t>(s.tokens.size()) + kAttentionTileRows - 1) / kAttentionTileRows;
  const int64_t heads_per_item = num_tiles * nkv >= 4 * nthreads ? group : 1;
  attn_items_.clear();
  for (int64_t t0 = 0; t0 < n;) {
    const int64_t seq_end = t0 + static_cast<int64_t>(batch.seqs[tok_seq_[t0]].tokens.size());
    for (int64_t t = t0; t < seq_end; t += kAttentionTileRows)
      for (int64_t h = 0; h < nh; h += heads_per_item)
        attn_items_.push_back({static_cast<int32_t>(t), static_cast<int32_t>(std::min(kAttentionTileRows, seq_end - t)),
                               static_cast<int32_t>(h), static_cast<int32_t>(heads_per_item)});
    t0 = seq_end;
  }
  std::atomic<int64_t> next{0};
  const int64_t num_items = static_cast<int64_t>(attn_items_.size());
  pool_->parallel_for(std::min(nthreads, num_items), [&](int64_t worker) {
    float* scratch = attn_scratch_.data() + worker * attn_scratch_per_thread_;
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < num_items;) {
      const attn_item& it = attn_items_[static_cast<size_t>(i)];
      paged_kv_view kv = base;
      kv.block_table = block_table_of(batch, static_cast<size_t>(tok_seq_[it.first_token])).data();
      kv.k_offset = layer_off + (it.first_head / group) * head_stride;
      kv.v_offset = kv.k_offset + v_off;
      attention_tile tile;
      tile.q = qkv_.data() + it.first_token * row + it.first_head * hd;
      tile.out = attn_.data() + it.first_token * q_size + it.first_head * hd;
      tile.q_row_stride = row;
      tile.out_row_stride = q_size;
      tile.num_rows = it.num_rows;
      tile.num_heads = it.num_heads;
      tile.first_pos = tok_pos_[it.first_token];
      tile.window = window;
      tile.scale = scale;
      const int64_t need = attention_tile_scratch_floats(tile.num_rows * tile.num_heads, attention_tile_span(tile), kv);
      if (need <= attn_scratch_per_thread_) {
        paged_attention_tile(tile, kv, scratch);
      } else {  // a context beyond the one the scratch was sized for at load
        thread_local std::vector<float> big;
        if (static_cast<int64_t>(big.size()) < need) big.resize(static_cast<size_t>(need));
        paged_attention_tile(tile, kv, big.data());
      }
    }
  });
}

void cpu_model::compute_logits(const step_batch& batch, step_logits& out) {
  const int64_t hidden = cfg_.hidden_size, vocab = cfg_.vocab_size;
  out.row_seq.clear();
  out.vocab_size = vocab;
  // Gather the rows asked for into h_: [num_rows, hidden].
  int64_t t = 0, rows = 0;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const seq_step& s = batch.seqs[i];
    const int64_t n = static_cast<int64_t>(s.tokens.size());
    const int64_t first = s.want_all_logits ? 0 : (s.want_logits ? n - 1 : n);
    for (int64_t j = first; j < n; ++j, ++rows) {
      std::copy_n(x_.data() + (t + j) * hidden, hidden, h_.data() + rows * hidden);
      out.row_seq.push_back(static_cast<int32_t>(i));
    }
    t += n;
  }
  out.data.resize(static_cast<size_t>(rows * vocab));
  if (rows > 0) {
    rmsnorm(h_.data(), w_.final_norm.data(), rows, hidden, cfg_.rms_norm_eps, h_.data());
    matmul_nt(h_.data(), rows, w_.lm_head_matrix(), nullptr, out.data.data(), *pool_);
    if (cfg_.final_logit_softcapping > 0)
      softcap(out.data.data(), rows * vocab, static_cast<float>(cfg_.final_logit_softcapping));
  }
  score_prompt_rows(batch, out);
}

// Prompt scoring: logits for the scored rows in chunks of kChunk rows, each reduced to its token's
// logprob and top k at once; the [chunk, vocab] scratch never leaves this function.
void cpu_model::score_prompt_rows(const step_batch& batch, step_logits& out) {
  out.prompt.clear();
  const std::vector<scored_row> todo = rows_to_score(batch);
  if (todo.empty()) return;
  constexpr int64_t kChunk = 32;
  const int64_t hidden = cfg_.hidden_size, vocab = cfg_.vocab_size;
  std::vector<float> h(static_cast<size_t>(kChunk * hidden)), logits(static_cast<size_t>(kChunk * vocab));
  for (size_t begin = 0; begin < todo.size(); begin += kChunk) {
    const int64_t m = std::min<int64_t>(kChunk, static_cast<int64_t>(todo.size() - begin));
    for (int64_t r = 0; r < m; ++r)
      std::copy_n(x_.data() + todo[begin + r].row * hidden, hidden, h.data() + r * hidden);
    rmsnorm(h.data(), w_.final_norm.data(), m, hidden, cfg_.rms_norm_eps, h.data());
    matmul_nt(h.data(), m, w_.lm_head_matrix(), nullptr, logits.data(), *pool_);
    if (cfg_.final_logit_softcapping > 0)
      softcap(logits.data(), m * vocab, static_cast<float>(cfg_.final_logit_softcapping));
    for (int64_t r = 0; r < m; ++r) {
      const scored_row& sr = todo[begin + r];
      const std::span<const float> row(logits.data() + r * vocab, static_cast<size_t>(vocab));
      out.prompt.push_back({sr.seq, sr.position, score_row(row, sr.token, sr.k)});
    }
  }
}

backend_memory cpu_model::memory() const {
  backend_memory m;
  m.weights_bytes = static_cast<uint64_t>(w_.num_bytes());
  m.kv_bytes = static_cast<uint64_t>(kv_pool_bytes());
  return m;
}

status cpu_model::forward(const step_batch& batch, step_logits& out) {
  std::lock_guard<std::mutex> lock(forward_mu_);
  TROUPE_TRY(check_batch(batch));
  const int64_t n = batch.num_tokens();
  if (n == 0) {
    out.row_seq.clear();
    out.data.clear();
    out.prompt.clear();
    out.vocab_size = cfg_.vocab_size;
    return ok_status();
  }
  const int64_t hidden = cfg_.hidden_size, inter = cfg_.intermediate_size;
  prepare_tokens(batch);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const layer_weights& lw = w_.layers[static_cast<size_t>(l)];
    rmsnorm(x_.data(), lw.attn_norm.data(), n, hidden, cfg_.rms_norm_eps, h_.data());
    matmul_nt(h_.data(), n, lw.w_qkv, lw.b_qkv.empty() ? nullptr : lw.b_qkv.data(), qkv_.data(), *pool_);
    attention_layer(batch, l);
    matmul_nt(attn_.data(), n, lw.w_o, nullptr, h_.data(), *pool_);
    if (comm_) TROUPE_TRY(comm_->all_reduce_sum(tp_rank_, batch.step_id, h_.data(), n * hidden));
    if (cfg_.sandwich_norms) rmsnorm(h_.data(), lw.post_attn_norm.data(), n, hidden, cfg_.rms_norm_eps, h_.data());
    add_in_place(x_.data(), h_.data(), n * hidden);
    rmsnorm(x_.data(), lw.mlp_norm.data(), n, hidden, cfg_.rms_norm_eps, h_.data());
    matmul_nt(h_.data(), n, lw.w_gate_up, nullptr, gate_up_.data(), *pool_);
    if (cfg_.gelu_tanh_mlp) gelu_tanh_mul(gate_up_.data(), n, inter, act_.data());
    else silu_mul(gate_up_.data(), n, inter, act_.data());
    matmul_nt(act_.data(), n, lw.w_down, nullptr, h_.data(), *pool_);
    if (comm_) TROUPE_TRY(comm_->all_reduce_sum(tp_rank_, batch.step_id, h_.data(), n * hidden));
    if (cfg_.sandwich_norms) rmsnorm(h_.data(), lw.post_mlp_norm.data(), n, hidden, cfg_.rms_norm_eps, h_.data());
    add_in_place(x_.data(), h_.data(), n * hidden);
  }
  if (tp_rank_ != 0) {  // the residual stream is identical on every rank: rank 0 answers
    out.row_seq.clear();
    out.data.clear();
    out.prompt.clear();
    out.vocab_size = cfg_.vocab_size;
    return ok_status();
  }
  compute_logits(batch, out);
  return ok_status();
}

}  // namespace troupe
