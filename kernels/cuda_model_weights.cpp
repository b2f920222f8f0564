// cuda_model's weights: each HF tensor (or the rows of several, fused) converted to the device dtype
// and copied into its place in the weights arena; random values for --load-format dummy.
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda_model.h"
#include "kernels/cuda_model_detail.h"
#include "kernels/embedding.h"
#include "kernels/host_dtype.h"

namespace troupe {

using namespace cuda_model_detail;

status cuda_model::upload_tensor(const weight_source& src, const std::string& name, const std::vector<int64_t>& shape,
                                 void* dst, float add) {
  const tensor_info* t = src.find(name);
  if (!t) return make_error(errc::not_found, src.origin() + ": missing tensor " + name);
  if (t->shape != shape)
    return make_error(errc::invalid_argument, src.origin() + ": tensor " + name + " has shape " +
                                                  shape_str(t->shape) + ", the config implies " + shape_str(shape));
  std::vector<float> f32;
  TROUPE_TRY(src.read_f32(name, f32));
  std::vector<uint16_t> bits(f32.size());
  for (size_t i = 0; i < f32.size(); ++i) bits[i] = float_to_device_bits(opts_.dtype, f32[i] + add);
  return cuda_status(cudaMemcpy(dst, bits.data(), bits.size() * 2, cudaMemcpyHostToDevice), "upload " + name);
}

status cuda_model::allocate_weights(const weight_source* src) {
  const model_dims d(cfg_);
  const bool has_bias = cfg_.attention_bias || (src && src->find(layer_name(0, "self_attn.q_proj.bias")));
  const bool tied = cfg_.tie_word_embeddings || (src && !src->find("lm_head.weight"));
  uint64_t seed = opts_.dummy_seed;
  // Places one tensor (`rows` x `cols`, possibly the concatenation of several HF tensors along rows)
  // and fills it from the source, or randomly for dummy weights (norm weights 1, biases 0).
  auto place = [&](void** out, int64_t rows, int64_t cols, std::vector<std::pair<std::string, int64_t>> parts,
                   float dummy_scale, float dummy_offset, float add = 0.f) -> status {
    auto p = weights_.allocate(static_cast<uint64_t>(rows * cols) * 2, kAlign);
    if (!p) return p.err();
    *out = *p;
    if (!src) {
      random_fill_args a;
      a.out = *out;
      a.num_elements = rows * cols;
      a.scale = dummy_scale;
      a.offset = dummy_offset;
      a.seed = ++seed * 0x9E3779B97F4A7C15ull;
      a.dtype = opts_.dtype;
      return cuda_status(launch_random_fill(a, stream_), "dummy weights");
    }
    char* dst = static_cast<char*>(*out);
    for (auto& [name, part_rows] : parts) {
      std::vector<int64_t> shape = cols == 1 ? std::vector<int64_t>{part_rows} : std::vector<int64_t>{part_rows, cols};
      TROUPE_TRY(upload_tensor(*src, name, shape, dst, add));
      dst += part_rows * cols * 2;
    }
    return ok_status();
  };
  const float wscale = 0.02f;
  // A norm weight [n]: as stored (Llama), or Gemma's w (see gemma_norm_form; dummy w = 0).
  const bool gemma = gemma_norm_form(cfg_);
  const float norm_add = gemma ? cfg_.norm_weight_offset - 1.f : 0.f;
  auto norm = [&](void** out, int64_t n, const std::string& name) {
    return place(out, n, 1, {{name, n}}, 0.f, gemma ? 0.f : 1.f, norm_add);
  };
  TROUPE_TRY(place(&embed_, d.V, d.H, {{"model.embed_tokens.weight", d.V}}, wscale, 0.f));
  layers_.assign(d.L, {});
  for (int64_t i = 0; i < d.L; ++i) {
    layer_weights& l = layers_[i];
    TROUPE_TRY(norm(&l.input_norm, d.H, layer_name(i, "input_layernorm.weight")));
    if (cfg_.sandwich_norms) {  // Gemma: post_attention_layernorm normalises the attention output
      TROUPE_TRY(norm(&l.attn_out_norm, d.H, layer_name(i, "post_attention_layernorm.weight")));
      TROUPE_TRY(norm(&l.post_norm, d.H, layer_name(i, "pre_feedforward_layernorm.weight")));
      TROUPE_TRY(norm(&l.mlp_out_norm, d.H, layer_name(i, "post_feedforward_layernorm.weight")));
    } else {
      TROUPE_TRY(norm(&l.post_norm, d.H, layer_name(i, "post_attention_layernorm.weight")));
    }
    TROUPE_TRY(place(&l.qkv, d.qkv, d.H,
                     {{layer_name(i, "self_attn.q_proj.weight"), d.Hq * d.D},
                      {layer_name(i, "self_attn.k_proj.weight"), d.Hkv * d.D},
                      {layer_name(i, "self_attn.v_proj.weight"), d.Hkv * d.D}},
                     wscale, 0.f));
    if (has_bias)
      TROUPE_TRY(place(&l.qkv_bias, d.qkv, 1,
                       {{layer_name(i, "self_attn.q_proj.bias"), d.Hq * d.D},
                        {layer_name(i, "self_attn.k_proj.bias"), d.Hkv * d.D},
                        {layer_name(i, "self_attn.v_proj.bias"), d.Hkv * d.D}},
                       0.f, 0.f));
    if (cfg_.qk_norm) {
      TROUPE_TRY(norm(&l.q_norm, d.D, layer_name(i, "self_attn.q_norm.weight")));
      TROUPE_TRY(norm(&l.k_norm, d.D, layer_name(i, "self_attn.k_norm.weight")));
    }
    TROUPE_TRY(place(&l.o, d.H, d.Hq * d.D, {{layer_name(i, "self_attn.o_proj.weight"), d.H}}, wscale, 0.f));
    TROUPE_TRY(place(&l.gate_up, 2 * d.I, d.H,
                     {{layer_name(i, "mlp.gate_proj.weight"), d.I}, {layer_name(i, "mlp.up_proj.weight"), d.I}},
                     wscale, 0.f));
    TROUPE_TRY(place(&l.down, d.H, d.I, {{layer_name(i, "mlp.down_proj.weight"), d.H}}, wscale, 0.f));
  }
  TROUPE_TRY(norm(&final_norm_, d.H, "model.norm.weight"));
  if (tied)
    lm_head_ = embed_;
  else
    TROUPE_TRY(place(&lm_head_, d.V, d.H, {{"lm_head.weight", d.V}}, wscale, 0.f));
  return ok_status();
}

}  // namespace troupe
