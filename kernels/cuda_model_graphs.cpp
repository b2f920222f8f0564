// cuda_model's decode-step CUDA graphs: capture at start-up, choice of graph per step, replay.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "config/log.h"
#include "kernels/cuda_model.h"

namespace troupe {

std::vector<int32_t> cuda_model::graph_batch_sizes() const {
  std::vector<int32_t> v;
  for (const decode_graph& g : graphs_) v.push_back(g.batch);
  return v;
}

// Design note: batch sizes 1, 2, 4, 8, then steps of 16 up to 64 and of 32 up to the limit (the
// limit itself too), like vLLM's capture list; a step runs the next size up, so padding wastes at
// most ~1/3 of a small batch and 1/7 of a large one. NCCL steps stay eager (collectives in graphs
// are not verified here).
status cuda_model::capture_decode_graphs() {
  if (!opts_.cuda_graphs || opts_.nccl_comm || opts_.max_graph_batch <= 0) return ok_status();
  const int32_t limit = static_cast<int32_t>(
      std::min<int64_t>({opts_.max_batch_size, opts_.max_graph_batch, max_tokens_, logit_rows_}));
  std::vector<int32_t> sizes;
  for (int32_t b : {1, 2, 4, 8}) sizes.push_back(b);
  for (int32_t b = 16; b <= 64; b += 16) sizes.push_back(b);
  for (int32_t b = 96; b <= 1024; b += 32) sizes.push_back(b);
  sizes.erase(std::remove_if(sizes.begin(), sizes.end(), [&](int32_t b) { return b > limit; }), sizes.end());
  if (sizes.empty() || sizes.back() != limit) sizes.push_back(limit);
  const int64_t bmax = sizes.back();

  int64_t off = 0;
  auto take = [&](int64_t n) {
    const int64_t o = off;
    off += (n + 3) / 4 * 4;
    return o;
  };
  glay_.tok = take(bmax), glay_.pos = take(bmax), glay_.slot = take(bmax), glay_.seq = take(4 * bmax);
  glay_.work = take(2 * bmax), glay_.split_len = take(1);
  glay_.end = off;  // the block tables: the persistent device table at tables_off_, past the end
  if (glay_.end > tables_off_) return make_error(errc::internal, "decode graph metadata exceeds its reserve");

  const attention_schedule_options so = schedule_options();
  size_t free_before = 0, free_after = 0, total = 0;
  TROUPE_CUDA_TRY(cudaStreamSynchronize(stream_), "before graph capture");
  TROUPE_CUDA_TRY(cudaMemGetInfo(&free_before, &total), "cudaMemGetInfo");
  const auto t0 = std::chrono::steady_clock::now();
  for (auto it = sizes.rbegin(); it != sizes.rend(); ++it) {
    const int32_t B = *it;
    // The splits a step at the longest context would use; shorter ones shrink split_len instead.
    std::vector<attention_seq> longest(B);
    for (int32_t i = 0; i < B; ++i) longest[i] = {i, 1, static_cast<int32_t>(max_blocks_per_seq_ * kv_layout_.block_seq_len - 1), 0};
    attention_schedule sched;
    make_attention_schedule(longest.data(), B, so, sched);
    decode_graph g;
    g.batch = B;
    g.num_splits = sched.num_splits;
    // Metadata of an all-padding step: run once eagerly (loads the cuBLAS kernels for m = B), then record.
    int32_t* h = host_meta_;
    for (int32_t i = 0; i < B; ++i) {
      h[glay_.tok + i] = 0, h[glay_.pos + i] = 0, h[glay_.slot + i] = -1;
      const attention_seq pad{i, 0, 0, 0};
      const attention_work w{i, 0};
      std::memcpy(h + glay_.seq + 4 * i, &pad, sizeof pad);
      std::memcpy(h + glay_.work + 2 * i, &w, sizeof w);
    }
    h[glay_.split_len] = 64;
    TROUPE_CUDA_TRY(cudaMemcpyAsync(buf_.meta, h, glay_.end * 4, cudaMemcpyHostToDevice, stream_), "upload graph metadata");
    TROUPE_TRY(run_decode_body(B, g.num_splits));
    TROUPE_CUDA_TRY(cudaStreamSynchronize(stream_), "graph warm-up");
    TROUPE_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    const status recorded = run_decode_body(B, g.num_splits);
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    if (!recorded || ended != cudaSuccess) {
      if (graph) cudaGraphDestroy(graph);
      if (!recorded) return recorded;
      return cuda_status(ended, "cudaStreamEndCapture (decode batch " + std::to_string(B) + ")");
    }
    const cudaError_t made = cudaGraphInstantiate(&g.exec, graph, 0);
    cudaGraphDestroy(graph);
    TROUPE_CUDA_TRY(made, "cudaGraphInstantiate (decode batch " + std::to_string(B) + ")");
    // Upload now, so the first replay allocates nothing either.
    TROUPE_CUDA_TRY(cudaGraphUpload(g.exec, stream_), "cudaGraphUpload");
    graphs_.insert(graphs_.begin(), g);
  }
  TROUPE_CUDA_TRY(cudaMemGetInfo(&free_after, &total), "cudaMemGetInfo");
  graph_bytes_ = free_before > free_after ? free_before - free_after : 0;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  logger("kernels")->info("cuda_model: captured {} decode-step CUDA graphs (batch {}..{}) in {:.0f} ms, {} of device memory",
                          graphs_.size(), graphs_.front().batch, graphs_.back().batch, ms, format_bytes(graph_bytes_));
  return ok_status();
}

status cuda_model::run_decode_body(int32_t B, int32_t num_splits) {
  const int32_t* meta = buf_.meta;
  attention_schedule sched;
  std::vector<attention_seq> one(1, attention_seq{0, 1, 0, 0});
  attention_schedule_options so;
  so.num_heads = static_cast<int32_t>(cfg_.num_heads);
  so.num_kv_heads = static_cast<int32_t>(cfg_.num_kv_heads);
  make_attention_schedule(one.data(), 1, so, sched);  // the head tiling, which depends on the model only
  paged_attention_args attn;
  attn.out = buf_.attn;
  attn.q = buf_.qkv;
  attn.q_stride = (cfg_.num_heads + 2 * cfg_.num_kv_heads) * cfg_.head_dim;
  attn.cache = kv_layout_;
  attn.block_tables = meta + tables_off_;  // persistent; each step's seqs name their rows
  attn.max_blocks_per_seq = static_cast<int32_t>(max_blocks_per_seq_);
  attn.tables_by_row = true;
  attn.seqs = reinterpret_cast<const attention_seq*>(meta + glay_.seq);
  attn.work = reinterpret_cast<const attention_work*>(meta + glay_.work);
  attn.num_tokens = B;
  attn.num_heads = static_cast<int32_t>(cfg_.num_heads);
  attn.set_schedule(sched);
  attn.num_work = B;
  attn.num_splits = num_splits;
  attn.split_len = 64;  // placeholder: the kernel reads split_len_dev
  attn.split_len_dev = meta + glay_.split_len;
  attn.partial_o = buf_.partial_o;
  attn.partial_ml = buf_.partial_ml;
  attn.dtype = opts_.dtype;
  TROUPE_TRY(run_layers(B, meta + glay_.tok, meta + glay_.pos, meta + glay_.slot, attn));
  gemm_args g;  // LM head over all B rows of the final hidden states
  g.dtype = opts_.dtype;
  g.y = buf_.logits, g.x = buf_.h, g.w = lm_head_, g.m = B, g.n = cfg_.vocab_size, g.k = cfg_.hidden_size;
  g.y_float32 = true;
  TROUPE_TRY(matmul(g));
  return softcap_logits(B);
}

const cuda_model::decode_graph* cuda_model::graph_for(const step_batch& batch) const {
  if (graphs_.empty() || batch.seqs.empty() || opts_.tp_rank != 0) return nullptr;
  const int64_t n = static_cast<int64_t>(batch.seqs.size());
  if (n > graphs_.back().batch) return nullptr;
  for (const auto& s : batch.seqs)
    if (s.tokens.size() != 1 || s.want_all_logits || s.prompt_logprobs >= 0) return nullptr;
  for (const decode_graph& g : graphs_)
    if (g.batch >= n) return &g;
  return nullptr;
}

status cuda_model::run_decode_graph(const decode_graph& g, const step_batch& batch, step_logits& out) {
  const int32_t n = static_cast<int32_t>(batch.seqs.size());
  const int64_t bs = kv_layout_.block_seq_len, V = cfg_.vocab_size;
  int32_t* h = host_meta_;
  int64_t max_kv = 1;
  std::vector<int32_t> rows;
  for (int32_t i = 0; i < g.batch; ++i) {
    attention_seq as{i, 0, 0, 0};
    if (i < n) {
      const seq_step& s = batch.seqs[i];
      const int64_t p = s.start_pos;
      const int32_t* table = block_table_of(batch, static_cast<size_t>(i)).data();
      h[glay_.tok + i] = s.tokens[0];
      h[glay_.pos + i] = s.start_pos;
      h[glay_.slot + i] = static_cast<int32_t>(table[p / bs] * bs + p % bs);
      as = {i, 1, s.start_pos, table_rows_[static_cast<size_t>(i)]};
      max_kv = std::max<int64_t>(max_kv, p + 1);
      if (s.want_logits) {
        rows.push_back(i);
        out.row_seq.push_back(i);
      }
    } else {
      h[glay_.tok + i] = 0, h[glay_.pos + i] = 0, h[glay_.slot + i] = -1;
    }
    const attention_work w{i, 0};
    std::memcpy(h + glay_.seq + 4 * i, &as, sizeof as);
    std::memcpy(h + glay_.work + 2 * i, &w, sizeof w);
  }
  const int64_t per_split = (max_kv + g.num_splits - 1) / g.num_splits;
  h[glay_.split_len] = static_cast<int32_t>(std::max<int64_t>(64, (per_split + 63) / 64 * 64));
  TROUPE_CUDA_TRY(cudaMemcpyAsync(buf_.meta, h, glay_.end * 4, cudaMemcpyHostToDevice, stream_), "upload step metadata");
  TROUPE_CUDA_TRY(cudaGraphLaunch(g.exec, stream_), "cudaGraphLaunch");
  float* dst = logits_dst_;  // forward_sampled's pinned rows, else the reply's
  if (!dst) {
    out.data.resize(rows.size() * static_cast<size_t>(V));
    dst = out.data.data();
  }
  TROUPE_TRY(deliver_logits(dst, 0, static_cast<int64_t>(rows.size()), rows.data()));  // or sampled on the device
  return cuda_status(cudaStreamSynchronize(stream_), "forward step (graph)");
}

}  // namespace troupe
