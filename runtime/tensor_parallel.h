// Tensor parallelism (Megatron-style) for a Llama-family decoder: which part of each weight a rank
// holds, the per-rank model shape, and a weight_source that serves a rank's slices so that every
// loader (CPU model_weights, CUDA upload) loads a shard exactly as it loads a whole model.
//
// Split over `world` ranks (rank r):
// - attention: q heads [r*Hq/W, (r+1)*Hq/W); KV heads split the same way when Hkv >= W, else each
//   rank holds the one KV head its q heads read (replicated over W/Hkv ranks). q/k/v rows (and the
//   Qwen2 biases) are sliced accordingly; o_proj is split by columns (its input), so each rank's
//   output is a partial sum: an all-reduce follows.
// - MLP: gate/up rows [r*I/W, (r+1)*I/W); down_proj by columns: an all-reduce follows.
// - Replicated: embeddings, LM head, norms. Every rank then holds the same residual stream and can
//   compute the logits; rank 0 does (the others skip the LM head).
// Valid when W divides Hq and I, and either W divides Hkv or Hkv divides W.
#pragma once

#include <cstdint>
#include <memory>

#include "config/error.h"
#include "runtime/model_config.h"
#include "runtime/weight_source.h"

namespace troupe {

struct tp_rank {
  int32_t rank = 0;
  int32_t world = 1;
};

// invalid_argument naming the dimension that `world` does not divide.
status check_tensor_parallel(const model_config& cfg, int32_t world);

// The shape one rank computes: heads, KV heads and intermediate size of its shard (head_dim,
// hidden and vocab unchanged). The caller has checked the split (check_tensor_parallel).
model_config shard_config(const model_config& cfg, tp_rank r);

// A view of `full` (which must outlive it) holding rank r's slices under the HF names, with the
// shard's shapes; tensors that are not split pass through unchanged.
result<std::unique_ptr<weight_source>> make_sharded_source(const weight_source& full, const model_config& cfg,
                                                           tp_rank r);

}  // namespace troupe
