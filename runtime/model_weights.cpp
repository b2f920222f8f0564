// Loads a Llama-family model's tensors (HF names) into model_weights, checking each shape against
// the config, fusing q/k/v and gate/up and choosing each matrix's storage dtype; and builds seeded
// random weights for benchmarks.
#include "runtime/model_weights.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "config/log.h"
#include "runtime/fused_weights.h"

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

  status check(const std::string& name, const std::vector<int64_t>& shape) {
    const tensor_info* info = src_.find(name);
    if (!info) return make_error(errc::not_found, "missing tensor '" + name + "' in " + src_.origin());
    if (info->shape != shape)
      return make_error(errc::corrupt_file, "tensor '" + name + "' in " + src_.origin() + " has shape " +
                                                shape_string(info->shape) + ", the config expects " +
                                                shape_string(shape));
    return ok_status();
  }

  status read(const std::string& name, const std::vector<int64_t>& shape, std::vector<float>& out,
              size_t offset = 0) {
    TROUPE_TRY(check(name, shape));
    TROUPE_TRY(src_.read_f32(name, scratch_));
    if (out.size() < offset + scratch_.size()) out.resize(offset + scratch_.size());
    std::memcpy(out.data() + offset, scratch_.data(), scratch_.size() * sizeof(float));
    return ok_status();
  }

  // Appends the tensor's GGML blocks to `out`.
  status read_raw(const std::string& name, const std::vector<int64_t>& shape, std::vector<uint8_t>& out) {
    TROUPE_TRY(check(name, shape));
    uint32_t type = 0;
    TROUPE_TRY(src_.read_raw(name, type, raw_));
    out.insert(out.end(), raw_.begin(), raw_.end());
    return ok_status();
  }

 private:
  const weight_source& src_;
  std::vector<float> scratch_;
  std::vector<uint8_t> raw_;
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

std::vector<float> random_values(size_t n, float scale, splitmix& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = rng.uniform(scale);
  return v;
}

// The storage dtype of a matrix made of `parts` (see weight_load_options).
// The storage type all of `parts` share ("" when they differ or one is missing).
std::string common_dtype(const weight_source& src, const std::vector<std::string>& parts) {
  std::string common;
  for (const auto& name : parts) {
    const tensor_info* t = src.find(name);
    if (!t || (!common.empty() && t->dtype != common)) return "";
    common = t->dtype;
  }
  return common;
}

// The GGML block format to hold a matrix in as the file stores it: when no dtype is forced and all
// parts share one block format the CPU matmul reads (fused parts of mixed formats are widened).
std::optional<weight_dtype> block_dtype(const weight_source& src, const std::vector<std::string>& parts,
                                        const weight_load_options& opts) {
  if (opts.dtype) return std::nullopt;
  const std::string common = common_dtype(src, parts);
  for (weight_dtype d : {weight_dtype::q4_0, weight_dtype::q4_1, weight_dtype::q5_0, weight_dtype::q5_1,
                         weight_dtype::q8_0, weight_dtype::q4_k, weight_dtype::q5_k, weight_dtype::q6_k})
    if (common == weight_dtype_name(d)) return d;
  return std::nullopt;
}

weight_dtype storage_dtype(const weight_source& src, const std::vector<std::string>& parts,
                           const weight_load_options& opts) {
  if (opts.dtype) return *opts.dtype;
  const std::string common = common_dtype(src, parts);
  if (common == "BF16") return weight_dtype::bf16;
  if (common == "F16") return weight_dtype::f16;
  return weight_dtype::f32;
}

// The name a file gives the storage type `d` (tensor_info::dtype): F32, BF16, F16, Q4_1 ...
std::string file_dtype_name(weight_dtype d) {
  switch (d) {
    case weight_dtype::f32: return "F32";
    case weight_dtype::bf16: return "BF16";
    case weight_dtype::f16: return "F16";
    default: return weight_dtype_name(d);
  }
}

// Design note (--mmap): a (fused) matrix is a view into the file when the file already holds it
// exactly as it will be held: every part stored as `d` (no conversion), in HF row order (no GGUF
// q/k unpermutation), the parts back to back in one mapping (Phi-3's split gate/up, a GGUF whose
// ffn_gate precedes ffn_up), aligned for the kernels. Anything else is copied. The loader and the
// planner both ask this one function, so the plan's mapped/copied split is what the load does.
std::optional<weight_matrix> mapped_matrix(const weight_source& src, const std::vector<std::string>& names,
                                           int64_t rows, int64_t cols, weight_dtype d, const weight_load_options& opts) {
  if (!opts.mmap) return std::nullopt;
  const std::string want = file_dtype_name(d);
  std::optional<tensor_bytes> all;
  for (const auto& name : names) {
    auto v = src.view(name);
    if (!v || v->dtype != want) return std::nullopt;
    if (!all) {
      all = std::move(v);
      continue;
    }
    if (all->keep != v->keep || all->data + all->bytes != v->data) return std::nullopt;
    all->bytes += v->bytes;
  }
  if (!all) return std::nullopt;
  auto m = weight_matrix::from_mapped(all->data, all->bytes, std::move(all->keep), rows, cols, d);
  if (!m) return std::nullopt;  // misaligned or sized otherwise: copied
  return std::move(*m);
}

// The attention projections of layer 0 against the config keys that size them, so that a config
// inconsistent with its checkpoint (say head_dim x heads != q_proj rows) is refused naming the keys,
// not only the tensor.
status check_attention_shapes(const model_config& c, const weight_source& src) {
  const std::string p = "model.layers.0.self_attn.";
  auto rows_are = [&](const std::string& name, int64_t want, const std::string& keys) -> status {
    const tensor_info* t = src.find(p + name);
    if (!t || t->shape.empty() || t->shape[0] == want) return ok_status();  // missing: named later
    std::vector<int64_t> expected = t->shape;
    expected[0] = want;
    return make_error(errc::corrupt_file, "tensor '" + p + name + "' in " + src.origin() + " has shape " +
                                              shape_string(t->shape) + ", the config expects " +
                                              shape_string(expected) + " (" + keys + " = " + std::to_string(want) +
                                              " rows)");
  };
  const std::string hd = " x head_dim (" + std::to_string(c.head_dim) + ")";
  TROUPE_TRY(rows_are("q_proj.weight", c.q_size(), "num_attention_heads (" + std::to_string(c.num_heads) + ")" + hd));
  TROUPE_TRY(rows_are("k_proj.weight", c.kv_size(), "num_key_value_heads (" + std::to_string(c.num_kv_heads) + ")" + hd));
  if (c.qk_norm) TROUPE_TRY(rows_are("q_norm.weight", c.head_dim, "head_dim"));
  return ok_status();
}

// Bytes of a [rows, cols] matrix stored as `d`.
uint64_t matrix_bytes(int64_t rows, int64_t cols, weight_dtype d) {
  const int64_t per_row = is_quantized(d) ? cols / weight_dtype_block(d) * weight_dtype_block_bytes(d)
                                          : cols * (d == weight_dtype::f32 ? 4 : 2);
  return static_cast<uint64_t>(rows * per_row);
}

}  // namespace

result<uint64_t> held_weight_bytes(const model_config& c, const weight_source& src, const weight_load_options& opts) {
  auto h = plan_held_weights(c, src, opts);
  if (!h) return h.err();
  return h->bytes;
}

result<held_weights> plan_held_weights(const model_config& c, const weight_source& fused_src,
                                       const weight_load_options& opts) {
  TROUPE_TRY(check_config(c));
  std::unique_ptr<weight_source> split;  // fused checkpoints (Phi-3) are held split, as loaded
  if (has_fused_projections(fused_src)) {
    auto s = split_fused_projections(fused_src, c);
    if (!s) return s.err();
    split = std::move(*s);
  }
  const weight_source& src = split ? *split : fused_src;
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size;
  uint64_t total = 0, mapped = 0;
  // The storage load_model_weights picks for a (fused) matrix: raw blocks when the source keeps
  // them and every part shares one block format, else storage_dtype.
  auto matrix = [&](std::initializer_list<std::pair<std::string, int64_t>> parts, int64_t cols) -> status {
    std::vector<std::string> names;
    int64_t rows = 0;
    for (const auto& [name, n] : parts) {
      const tensor_info* t = src.find(name);
      if (!t) return make_error(errc::not_found, "missing tensor '" + name + "' in " + src.origin());
      names.push_back(name), rows += n;
    }
    std::optional<weight_dtype> d = src.has_raw_blocks() ? block_dtype(src, names, opts) : std::nullopt;
    const weight_dtype held = d ? *d : storage_dtype(src, names, opts);
    total += matrix_bytes(rows, cols, held);
    if (mapped_matrix(src, names, rows, cols, held, opts)) mapped += matrix_bytes(rows, cols, held);
    return ok_status();
  };
  TROUPE_TRY(matrix({{"model.embed_tokens.weight", c.vocab_size}}, h));
  if (!c.tie_word_embeddings) TROUPE_TRY(matrix({{"lm_head.weight", c.vocab_size}}, h));
  int64_t norm_floats = h;  // the final norm
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    TROUPE_TRY(matrix({{p + "self_attn.q_proj.weight", q}, {p + "self_attn.k_proj.weight", kv},
                       {p + "self_attn.v_proj.weight", kv}},
                      h));
    TROUPE_TRY(matrix({{p + "self_attn.o_proj.weight", h}}, q));
    TROUPE_TRY(matrix({{p + "mlp.gate_proj.weight", inter}, {p + "mlp.up_proj.weight", inter}}, h));
    TROUPE_TRY(matrix({{p + "mlp.down_proj.weight", h}}, inter));
    norm_floats += (c.sandwich_norms ? 4 : 2) * h + (c.qk_norm ? 2 * c.head_dim : 0) + (c.attention_bias ? q + 2 * kv : 0);
  }
  return held_weights{total + static_cast<uint64_t>(norm_floats) * 4, mapped};
}

int64_t model_weights::num_bytes() const {
  int64_t n = embed.num_bytes() + lm_head.num_bytes() + static_cast<int64_t>(final_norm.size() * 4);
  for (const auto& l : layers)
    n += l.w_qkv.num_bytes() + l.w_o.num_bytes() + l.w_gate_up.num_bytes() + l.w_down.num_bytes() +
         static_cast<int64_t>((l.attn_norm.size() + l.b_qkv.size() + l.mlp_norm.size() + l.q_norm.size() +
                               l.k_norm.size() + l.post_attn_norm.size() + l.post_mlp_norm.size()) * 4);
  return n;
}

int64_t model_weights::mapped_bytes() const {
  int64_t n = embed.mapped_bytes() + lm_head.mapped_bytes();
  for (const auto& l : layers)
    n += l.w_qkv.mapped_bytes() + l.w_o.mapped_bytes() + l.w_gate_up.mapped_bytes() + l.w_down.mapped_bytes();
  return n;
}

result<model_weights> load_model_weights(const model_config& c, const weight_source& fused_src,
                                         const weight_load_options& opts) {
  TROUPE_TRY(check_config(c));
  std::unique_ptr<weight_source> split;
  if (has_fused_projections(fused_src)) {
    auto s = split_fused_projections(fused_src, c);
    if (!s) return s.err();
    split = std::move(*s);
  }
  const weight_source& src = split ? *split : fused_src;
  TROUPE_TRY(check_attention_shapes(c, src));
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size;
  tensor_reader r(src);
  model_weights w;
  std::vector<float> buf;  // float32 staging of one (fused) matrix
  // A (fused) matrix of `parts` {name, rows}, each [rows, cols], stacked by rows.
  auto matrix = [&](std::initializer_list<std::pair<std::string, int64_t>> parts, int64_t cols,
                    weight_matrix& out) -> status {
    std::vector<std::string> names;
    int64_t rows = 0;
    for (const auto& [name, n] : parts) names.push_back(name), rows += n;
    const std::optional<weight_dtype> block = block_dtype(src, names, opts);
    if (auto m = mapped_matrix(src, names, rows, cols, block ? *block : storage_dtype(src, names, opts), opts)) {
      for (const auto& [name, n] : parts) TROUPE_TRY(r.check(name, {n, cols}));
      out = std::move(*m);
      return ok_status();
    }
    if (auto qd = block) {
      // A source without raw blocks (a tensor-parallel shard) is read as float32 below.
      std::vector<uint8_t> bytes;
      status st;
      for (const auto& [name, n] : parts)
        if (st = r.read_raw(name, {n, cols}, bytes); !st) break;
      if (st) {
        auto m = weight_matrix::from_blocks(std::move(bytes), rows, cols, *qd);
        if (!m) return make_error(m.err().code, src.origin() + ": " + m.err().message);
        out = std::move(*m);
        return ok_status();
      }
      if (st.err().code != errc::unsupported) return st;
    }
    size_t offset = 0;
    for (const auto& [name, n] : parts) {
      TROUPE_TRY(r.read(name, {n, cols}, buf, offset));
      offset += static_cast<size_t>(n * cols);
    }
    buf.resize(offset);
    out = weight_matrix::from_f32(std::move(buf), rows, cols, storage_dtype(src, names, opts));
    buf.clear();
    return ok_status();
  };
  const std::string embed = "model.embed_tokens.weight", head = "lm_head.weight";
  TROUPE_TRY(matrix({{embed, c.vocab_size}}, h, w.embed));
  // An RMSNorm weight, with Gemma's (1 + w) folded in when the checkpoint stores w.
  auto norm = [&](const std::string& name, int64_t n, std::vector<float>& out) -> status {
    TROUPE_TRY(r.read(name, {n}, out));
    if (c.norm_weight_offset != 0)
      for (auto& x : out) x += c.norm_weight_offset;
    return ok_status();
  };
  TROUPE_TRY(norm("model.norm.weight", h, w.final_norm));
  // Tied models may still carry lm_head.weight (a copy); the config decides.
  if (!c.tie_word_embeddings) TROUPE_TRY(matrix({{head, c.vocab_size}}, h, w.lm_head));
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    layer_weights& l = w.layers[static_cast<size_t>(i)];
    TROUPE_TRY(norm(p + "input_layernorm.weight", h, l.attn_norm));
    if (c.sandwich_norms) {  // Gemma: post_attention_layernorm normalises the attention output
      TROUPE_TRY(norm(p + "post_attention_layernorm.weight", h, l.post_attn_norm));
      TROUPE_TRY(norm(p + "pre_feedforward_layernorm.weight", h, l.mlp_norm));
      TROUPE_TRY(norm(p + "post_feedforward_layernorm.weight", h, l.post_mlp_norm));
    } else {
      TROUPE_TRY(norm(p + "post_attention_layernorm.weight", h, l.mlp_norm));
    }
    if (c.qk_norm) {
      TROUPE_TRY(norm(p + "self_attn.q_norm.weight", c.head_dim, l.q_norm));
      TROUPE_TRY(norm(p + "self_attn.k_norm.weight", c.head_dim, l.k_norm));
    }
    TROUPE_TRY(matrix({{p + "self_attn.q_proj.weight", q}, {p + "self_attn.k_proj.weight", kv},
                       {p + "self_attn.v_proj.weight", kv}},
                      h, l.w_qkv));
    if (c.attention_bias) {
      TROUPE_TRY(r.read(p + "self_attn.q_proj.bias", {q}, l.b_qkv, 0));
      TROUPE_TRY(r.read(p + "self_attn.k_proj.bias", {kv}, l.b_qkv, static_cast<size_t>(q)));
      TROUPE_TRY(r.read(p + "self_attn.v_proj.bias", {kv}, l.b_qkv, static_cast<size_t>(q + kv)));
    }
    TROUPE_TRY(matrix({{p + "self_attn.o_proj.weight", h}}, q, l.w_o));
    TROUPE_TRY(matrix({{p + "mlp.gate_proj.weight", inter}, {p + "mlp.up_proj.weight", inter}}, h, l.w_gate_up));
    TROUPE_TRY(matrix({{p + "mlp.down_proj.weight", h}}, inter, l.w_down));
  }
  logger("runtime")->info("{}: weights {:.1f} MiB held, {:.1f} MiB mapped from the file, {:.1f} MiB copied{}",
                          src.origin(), w.num_bytes() / 1048576.0, w.mapped_bytes() / 1048576.0,
                          (w.num_bytes() - w.mapped_bytes()) / 1048576.0, opts.mmap ? " (--mmap)" : "");
  return w;
}

result<model_weights> load_model_weights(const model_config& cfg, const std::filesystem::path& path,
                                         load_format format, const weight_load_options& opts) {
  if (format == load_format::dummy) return make_dummy_weights(cfg, opts.seed, opts.dtype.value_or(weight_dtype::f32));
  auto src = open_weights(path);
  if (!src) return src.err();
  return load_model_weights(cfg, **src, opts);
}

result<model_weights> make_dummy_weights(const model_config& c, uint64_t seed, weight_dtype dtype) {
  TROUPE_TRY(check_config(c));
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), inter = c.intermediate_size,
                vocab = c.vocab_size;
  splitmix rng{seed ^ 0x7472'6f75'7065ull};
  auto matrix = [&](int64_t rows, int64_t cols, float scale) {
    return weight_matrix::from_f32(random_values(static_cast<size_t>(rows * cols), scale, rng), rows, cols, dtype);
  };
  auto inv_sqrt = [](int64_t n) { return 0.5f / std::sqrt(static_cast<float>(n)); };
  model_weights w;
  w.embed = matrix(vocab, h, 1.0f);
  w.final_norm.assign(static_cast<size_t>(h), 1.0f);
  if (!c.tie_word_embeddings) w.lm_head = matrix(vocab, h, inv_sqrt(h));
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (auto& l : w.layers) {
    l.attn_norm.assign(static_cast<size_t>(h), 1.0f);
    l.mlp_norm.assign(static_cast<size_t>(h), 1.0f);
    if (c.sandwich_norms) {
      l.post_attn_norm.assign(static_cast<size_t>(h), 1.0f);
      l.post_mlp_norm.assign(static_cast<size_t>(h), 1.0f);
    }
    if (c.qk_norm) {
      l.q_norm.assign(static_cast<size_t>(c.head_dim), 1.0f);
      l.k_norm.assign(static_cast<size_t>(c.head_dim), 1.0f);
    }
    l.w_qkv = matrix(q + 2 * kv, h, inv_sqrt(h));
    if (c.attention_bias) l.b_qkv = random_values(static_cast<size_t>(q + 2 * kv), 0.02f, rng);
    l.w_o = matrix(h, q, inv_sqrt(q));
    l.w_gate_up = matrix(2 * inter, h, inv_sqrt(h));
    l.w_down = matrix(h, inter, inv_sqrt(inter));
  }
  return w;
}

}  // namespace troupe
