// Loads a Llama-family model's tensors (HF names) into model_weights, checking each shape against
// the config, fusing q/k/v and gate/up; and builds seeded random weights for benchmarks.
#include "runtime/model_weights.h"

#include <cmath>
#include <cstring>
#include <sstream>

namespace troupe {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

status check_config(const model_config& c) {
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.intermediate_size <= 0 || c.num_layers <= 0 ||
      c.num_heads <= 0 || c.num_kv_heads <= 0 || c.head_dim <= 0)
    return make_error(errc::invalid_argument, "model config '" + c.name + "' has a non-positive size");
  if (c.num_heads % c.num_kv_heads != 0)
    return make_error(errc::invalid_argument, "model config '" + c.name + "': num_heads " +
                                                  std::to_string(c.num_heads) + " is not a multiple of num_kv_heads " +
                                                  std::to_string(c.num_kv_heads));
  if (c.head_dim % 2 != 0)
    return make_error(errc::invalid_argument, "model config '" + c.name + "': head_dim must be even for rotary");
  return ok_status();
}

// Reads `name` into out[offset, offset + numel) after checking its shape.
class tensor_reader {
 public:
  tensor_reader(const weight_source& src) : src_(src) {}

  status read(const std::string& name, const std::vector<int64_t>& shape, std::vector<float>& out,
              size_t offset = 0) {
    const tensor_info* info = src_.find(name);
    if (!info) return make_error(errc::not_found, "missing tensor '" + name + "' in " + src_.origin());
    if (info->shape != shape)
      return make_error(errc::corrupt_file, "tensor '" + name + "' in " + src_.origin() + " has shape " +
                                                shape_string(info->shape) + ", the config expects " +
                                                shape_string(shape));
    TROUPE_TRY(src_.read_f32(name, scratch_));
    if (out.size() < offset + scratch_.size()) out.resize(offset + scratch_.size());
    std::memcpy(out.data() + offset, scratch_.data(), scratch_.size() * sizeof(float));
    return ok_status();
  }

 private:
  const weight_source& src_;
  std::vector<float> scratch_;
};

// splitmix64: a small, fast, seedable generator; quality is ample for dummy weights.
struct splitmix {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float scale) {  // in [-scale, scale)
    return scale * (static_cast<float>(next() >> 40) * (2.0f / 16777216.0f) - 1.0f);
  }
};

void fill_random(std::vector<float>& v, size_t n, float scale, splitmix& rng) {
  v.resize(n);
  for (auto& x : v) x = rng.uniform(scale);
}

}  // namespace

int64_t model_weights::num_bytes() const {
  size_t n = embed.size() + final_norm.size() + lm_head.size();
  for (const auto& l : layers)
    n += l.attn_norm.size() + l.w_qkv.size() + l.b_qkv.size() + l.w_o.size() + l.mlp_norm.size() +
         l.w_gate_up.size() + l.w_down.size();
  return static_cast<int64_t>(n * sizeof(float));
}

result<model_weights> load_model_weights(const model_config& c, const weight_source& src) {
  TROUPE_TRY(check_config(c));
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size;
  tensor_reader r(src);
  model_weights w;
  TROUPE_TRY(r.read("model.embed_tokens.weight", {c.vocab_size, h}, w.embed));
  TROUPE_TRY(r.read("model.norm.weight", {h}, w.final_norm));
  // Tied models may still carry lm_head.weight (a copy); the config decides.
  if (!c.tie_word_embeddings) TROUPE_TRY(r.read("lm_head.weight", {c.vocab_size, h}, w.lm_head));
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    layer_weights& l = w.layers[static_cast<size_t>(i)];
    TROUPE_TRY(r.read(p + "input_layernorm.weight", {h}, l.attn_norm));
    TROUPE_TRY(r.read(p + "post_attention_layernorm.weight", {h}, l.mlp_norm));
    l.w_qkv.resize(static_cast<size_t>((q + 2 * kv) * h));
    TROUPE_TRY(r.read(p + "self_attn.q_proj.weight", {q, h}, l.w_qkv, 0));
    TROUPE_TRY(r.read(p + "self_attn.k_proj.weight", {kv, h}, l.w_qkv, static_cast<size_t>(q * h)));
    TROUPE_TRY(r.read(p + "self_attn.v_proj.weight", {kv, h}, l.w_qkv, static_cast<size_t>((q + kv) * h)));
    if (c.attention_bias) {
      l.b_qkv.resize(static_cast<size_t>(q + 2 * kv));
      TROUPE_TRY(r.read(p + "self_attn.q_proj.bias", {q}, l.b_qkv, 0));
      TROUPE_TRY(r.read(p + "self_attn.k_proj.bias", {kv}, l.b_qkv, static_cast<size_t>(q)));
      TROUPE_TRY(r.read(p + "self_attn.v_proj.bias", {kv}, l.b_qkv, static_cast<size_t>(q + kv)));
    }
    TROUPE_TRY(r.read(p + "self_attn.o_proj.weight", {h, q}, l.w_o));
    l.w_gate_up.resize(static_cast<size_t>(2 * inter * h));
    TROUPE_TRY(r.read(p + "mlp.gate_proj.weight", {inter, h}, l.w_gate_up, 0));
    TROUPE_TRY(r.read(p + "mlp.up_proj.weight", {inter, h}, l.w_gate_up, static_cast<size_t>(inter * h)));
    TROUPE_TRY(r.read(p + "mlp.down_proj.weight", {h, inter}, l.w_down));
  }
  return w;
}

result<model_weights> make_dummy_weights(const model_config& c, uint64_t seed) {
  TROUPE_TRY(check_config(c));
  const size_t h = static_cast<size_t>(c.hidden_size), q = static_cast<size_t>(c.q_size()),
               kv = static_cast<size_t>(c.kv_size()), inter = static_cast<size_t>(c.intermediate_size),
               vocab = static_cast<size_t>(c.vocab_size);
  splitmix rng{seed ^ 0x7472'6f75'7065ull};
  const float sh = 0.5f / std::sqrt(static_cast<float>(h));
  model_weights w;
  fill_random(w.embed, vocab * h, 1.0f, rng);
  w.final_norm.assign(h, 1.0f);
  if (!c.tie_word_embeddings) fill_random(w.lm_head, vocab * h, sh, rng);
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (auto& l : w.layers) {
    l.attn_norm.assign(h, 1.0f);
    l.mlp_norm.assign(h, 1.0f);
    fill_random(l.w_qkv, (q + 2 * kv) * h, sh, rng);
    if (c.attention_bias) fill_random(l.b_qkv, q + 2 * kv, 0.02f, rng);
    fill_random(l.w_o, h * q, 0.5f / std::sqrt(static_cast<float>(q)), rng);
    fill_random(l.w_gate_up, 2 * inter * h, sh, rng);
    fill_random(l.w_down, h * inter, 0.5f / std::sqrt(static_cast<float>(inter)), rng);
  }
  return w;
}

}  // namespace troupe
