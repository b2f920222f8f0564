// Checkpoints that fuse projections (Phi-3: self_attn.qkv_proj, mlp.gate_up_proj) seen as the
// Llama layout every loader reads (q_proj, k_proj, v_proj, gate_proj, up_proj): a weight_source
// view that splits the fused tensors by rows on read, so CPU and CUDA loading and tensor-parallel
// sharding need no per-family code.
#pragma once

#include <memory>

#include "config/error.h"
#include "runtime/model_config.h"
#include "runtime/weight_source.h"

namespace troupe {

// True when `src` holds a fused tensor (qkv_proj or gate_up_proj) of any layer.
bool has_fused_projections(const weight_source& src);

// A view of `inner` (which must outlive it) with each layer's fused tensors replaced by their parts.
// A fused tensor whose rows disagree with the config is errc::corrupt_file naming the tensor and
// the config keys (num_attention_heads x head_dim + 2 x num_key_value_heads x head_dim, or
// 2 x intermediate_size).
result<std::unique_ptr<weight_source>> split_fused_projections(const weight_source& inner, const model_config& cfg);

// The same, owning `inner`; sources without fused tensors are returned unchanged.
result<std::unique_ptr<weight_source>> split_fused_projections(std::unique_ptr<weight_source> inner,
                                                               const model_config& cfg);

}  // namespace troupe
