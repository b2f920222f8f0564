// The model view of a GGUF file: model_config from the {arch}.* keys, tokenizer_data from the
// tokenizer.ggml.* keys, and a weight_source that renames GGUF tensors to Hugging Face names,
// reverses their dims to HF's [out, in] order, and undoes llama.cpp's q/k row permutation.
#include "runtime/gguf_model.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "config/log.h"
#include "runtime/dequant.h"
#include "runtime/gguf_file.h"
#include "runtime/model_config_gemma3.h"

namespace troupe {
namespace {


// The names of the tensor types read_f32 can convert, for the message that refuses another.
std::string readable_type_names() {
  std::string out;
  for (uint32_t t = 0; t < 64; ++t)
    if (const ggml_type_traits* tt = ggml_type_info(t); tt && tt->can_dequantize)
      out += (out.empty() ? "" : ", ") + std::string(tt->name);
  return out;
}

// llama.cpp's converter permutes q/k rows only for the llama family (GGML's interleaved rope).
bool arch_permutes_qk(const std::string& a) { return a == "llama" || a == "mistral"; }

// Reads integer `key` into `out`; absent keys keep `out` unless required.
status int_key(const gguf_file& f, const std::string& key, int64_t& out, bool required) {
  auto v = f.get_int(key);
  if (!v) return v.err();
  if (!v->has_value()) {
    if (required) return make_error(errc::corrupt_file, f.origin() + ": missing key '" + key + "'");
    return ok_status();
  }
  out = **v;
  return ok_status();
}

status float_key(const gguf_file& f, const std::string& key, double& out) {
  auto v = f.get_float(key);
  if (!v) return v.err();
  if (v->has_value()) out = **v;
  return ok_status();
}

result<std::string> architecture(const gguf_file& f) {
  auto arch = f.get_string("general.architecture");
  if (!arch) return arch.err();
  if (!arch->has_value()) return make_error(errc::corrupt_file, f.origin() + ": missing key 'general.architecture'");
  if (!is_supported_architecture(**arch))
    return make_error(errc::unsupported, f.origin() + ": architecture '" + **arch + "' is not supported (supported: " +
                                             supported_architectures_list() + ")");
  return **arch;
}

// A small float tensor (rope factors) as float32 values; errors name the file and the tensor.
result<std::vector<float>> f32_tensor(const gguf_file& f, const std::string& name) {
  const gguf_tensor* t = f.find_tensor(name);
  if (!t) return make_error(errc::corrupt_file, f.origin() + ": missing tensor '" + name + "'");
  if (t->dims.size() != 1 || t->num_elements <= 0 || t->num_elements > 65536)
    return make_error(errc::corrupt_file, f.origin() + ": tensor '" + name + "' should be a short vector");
  std::vector<float> out(static_cast<size_t>(t->num_elements));
  auto st = dequantize_to_f32(t->type, t->data, t->num_elements, out.data());
  if (!st) return make_error(st.err().code, f.origin() + ": tensor '" + name + "': " + st.err().message);
  return out;
}

status read_rope(const gguf_file& f, const std::string& p, rope_config& rope) {
  TROUPE_TRY(float_key(f, p + "rope.freq_base", rope.theta));
  auto type = f.get_string(p + "rope.scaling.type");
  if (!type) return type.err();
  double factor = 1.0;
  TROUPE_TRY(float_key(f, p + "rope.scale_linear", factor));  // older files
  TROUPE_TRY(float_key(f, p + "rope.scaling.factor", factor));
  const std::string t = type->value_or(factor != 1.0 ? "linear" : "none");
  if (t == "linear") {
    rope.type = "linear";
    rope.factor = factor;
  } else if (t != "none") {
    logger("runtime")->warn("{}: rope scaling '{}' is not implemented; using plain rope (fine within the original context)",
                            f.origin(), t);
  }
  int64_t orig = rope.original_max_position_embeddings;
  TROUPE_TRY(int_key(f, p + "rope.scaling.original_context_length", orig, false));
  rope.original_max_position_embeddings = orig;
  // Llama 3 scaling as llama.cpp's converter stores it: per-dimension divisors of the frequencies.
  if (f.find_tensor("rope_freqs.weight")) {
    auto factors = f32_tensor(f, "rope_freqs.weight");
    if (!factors) return factors.err();
    rope.freq_factors = std::move(*factors);
  }
  return ok_status();
}

// Phi-3's LongRoPE as llama.cpp stores it: rope_factors_long/short.weight tensors, the attention
// factor and original context as keys; the list is chosen by resolve_longrope like config.json's.
status read_longrope(const gguf_file& f, const std::string& p, model_config& c) {
  if (!f.find_tensor("rope_factors_long.weight") && !f.find_tensor("rope_factors_short.weight")) return ok_status();
  auto lf = f32_tensor(f, "rope_factors_long.weight");
  if (!lf) return lf.err();
  auto sf = f32_tensor(f, "rope_factors_short.weight");
  if (!sf) return sf.err();
  c.rope.type = "longrope";
  c.rope.long_factor = std::move(*lf);
  c.rope.short_factor = std::move(*sf);
  c.rope.factor = 0;
  c.rope.attention_factor = 0;
  TROUPE_TRY(float_key(f, p + "rope.scaling.attn_factor", c.rope.attention_factor));
  resolve_longrope(c);
  return ok_status();
}

result<model_config> config_from(const gguf_file& f) {
  auto arch = architecture(f);
  if (!arch) return arch.err();
  model_config c;
  c.architecture = *arch;
  c.source_dtype = "gguf";
  const std::string p = *arch + ".";
  auto name = f.get_string("general.name");
  if (!name) return name.err();
  c.name = name->value_or(std::filesystem::path(f.origin()).stem().string());

  TROUPE_TRY(int_key(f, p + "block_count", c.num_layers, true));
  TROUPE_TRY(int_key(f, p + "context_length", c.max_position_embeddings, true));
  TROUPE_TRY(int_key(f, p + "embedding_length", c.hidden_size, true));
  TROUPE_TRY(int_key(f, p + "feed_forward_length", c.intermediate_size, true));
  TROUPE_TRY(int_key(f, p + "attention.head_count", c.num_heads, true));
  c.num_kv_heads = c.num_heads;
  TROUPE_TRY(int_key(f, p + "attention.head_count_kv", c.num_kv_heads, false));
  TROUPE_TRY(int_key(f, p + "attention.sliding_window", c.sliding_window, false));
  TROUPE_TRY(float_key(f, p + "attention.layer_norm_rms_epsilon", c.rms_norm_eps));

  // head_dim: the key length when given; else the rope dimension; else hidden / heads.
  c.head_dim = 0;
  TROUPE_TRY(int_key(f, p + "attention.key_length", c.head_dim, false));
  if (c.head_dim == 0) TROUPE_TRY(int_key(f, p + "rope.dimension_count", c.head_dim, false));
  if (c.head_dim == 0 && c.num_heads > 0) c.head_dim = c.hidden_size / c.num_heads;

  TROUPE_TRY(int_key(f, p + "vocab_size", c.vocab_size, false));
  if (c.vocab_size == 0) {
    if (const gguf_value* tokens = f.find("tokenizer.ggml.tokens"); tokens && tokens->is_array())
      c.vocab_size = static_cast<int64_t>(tokens->count);
    else if (const gguf_tensor* emb = f.find_tensor("token_embd.weight"); emb && emb->dims.size() == 2)
      c.vocab_size = emb->dims[1];
  }
  TROUPE_TRY(read_rope(f, p, c.rope));

  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  c.attention_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = c.architecture == "qwen3";
  if (c.architecture == "phi3") TROUPE_TRY(read_longrope(f, p, c));
  if (c.architecture == "gemma3") TROUPE_TRY(read_gemma3_gguf(f, c));

  int64_t id = -1;
  TROUPE_TRY(int_key(f, "tokenizer.ggml.bos_token_id", id, false));
  c.bos_token_id = id;
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    id = -1;
    TROUPE_TRY(int_key(f, key, id, false));
    if (id >= 0 && std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end())
      c.eos_token_ids.push_back(id);
  }
  TROUPE_TRY(validate_model_config(c, f.origin()));
  return c;
}

// A token id key: -1 when absent; ids outside the vocabulary are dropped with a warning.
result<int32_t> token_id_key(const gguf_file& f, const std::string& key, size_t vocab) {
  int64_t id = -1;
  TROUPE_TRY(int_key(f, key, id, false));
  if (id < -1 || id >= static_cast<int64_t>(vocab)) {
    logger("runtime")->warn("{}: {} = {} is outside the vocabulary of {} tokens; ignored", f.origin(), key, id, vocab);
    return -1;
  }
  return static_cast<int32_t>(id);
}

const gguf_value* array_key(const gguf_file& f, const std::string& key, gguf_type elem, size_t expect_count,
                            status& st) {
  const gguf_value* v = f.find(key);
  if (!v) return nullptr;
  if (!v->is_array() || v->elem_type != elem) {
    st = make_error(errc::corrupt_file, f.origin() + ": key '" + key + "' should be an array of " + gguf_type_name(elem));
    return nullptr;
  }
  if (expect_count != 0 && v->count != expect_count) {
    st = make_error(errc::corrupt_file, f.origin() + ": key '" + key + "' has " + std::to_string(v->count) +
                                            " entries but the vocabulary has " + std::to_string(expect_count));
    return nullptr;
  }
  return v;
}

result<tokenizer_data> tokenizer_from(const gguf_file& f) {
  tokenizer_data t;
  auto model = f.get_string("tokenizer.ggml.model");
  if (!model) return model.err();
  if (!model->has_value()) {
    // A file with no tokenizer at all serves token ids only, like an HF folder without tokenizer.json.
    if (!f.find("tokenizer.ggml.tokens"))
      return make_error(errc::not_found, f.origin() + ": no tokenizer (no 'tokenizer.ggml.*' keys)");
    return make_error(errc::corrupt_file, f.origin() + ": missing key 'tokenizer.ggml.model'");
  }
  t.model = **model;
  auto pre = f.get_string("tokenizer.ggml.pre");
  if (!pre) return pre.err();
  t.pre = pre->value_or("default");

  status st;
  const gguf_value* tokens = array_key(f, "tokenizer.ggml.tokens", gguf_type::string, 0, st);
  if (!st) return st.err();
  if (!tokens) return make_error(errc::corrupt_file, f.origin() + ": missing key 'tokenizer.ggml.tokens'");
  const size_t vocab = tokens->strings.size();
  t.tokens.assign(tokens->strings.begin(), tokens->strings.end());

  const gguf_value* types = array_key(f, "tokenizer.ggml.token_type", gguf_type::i32, vocab, st);
  if (!st) return st.err();
  t.types.assign(vocab, token_type::normal);
  if (types)
    for (size_t k = 0; k < vocab; ++k) t.types[k] = static_cast<token_type>(types->int_at(k).value_or(1));

  const gguf_value* scores = array_key(f, "tokenizer.ggml.scores", gguf_type::f32, vocab, st);
  if (!st) return st.err();
  if (scores) {
    t.scores.resize(vocab);
    for (size_t k = 0; k < vocab; ++k) t.scores[k] = static_cast<float>(scores->float_at(k).value_or(0.0));
  }
  const gguf_value* merges = array_key(f, "tokenizer.ggml.merges", gguf_type::string, 0, st);
  if (!st) return st.err();
  if (merges) t.merges.assign(merges->strings.begin(), merges->strings.end());

  for (auto [key, out] : {std::pair{"tokenizer.ggml.bos_token_id", &t.bos_id}, {"tokenizer.ggml.eos_token_id", &t.eos_id},
                          {"tokenizer.ggml.unknown_token_id", &t.unk_id}, {"tokenizer.ggml.padding_token_id", &t.pad_id}}) {
    auto id = token_id_key(f, key, vocab);
    if (!id) return id.err();
    *out = *id;
  }
  // Defaults as llama.cpp's: SentencePiece vocabularies add BOS and a space prefix, BPE ones don't.
  const bool spm = t.model == "llama";
  for (auto [key, out, dflt] : {std::tuple{"tokenizer.ggml.add_bos_token", &t.add_bos, spm},
                                {"tokenizer.ggml.add_eos_token", &t.add_eos, false},
                                {"tokenizer.ggml.add_space_prefix", &t.add_space_prefix, spm}}) {
    auto v = f.get_bool(key);
    if (!v) return v.err();
    *out = v->value_or(dflt);
  }
  auto tmpl = f.get_string("tokenizer.chat_template");
  if (!tmpl) return tmpl.err();
  t.chat_template = tmpl->value_or("");

  // End-of-generation tokens besides eos: explicit eot/eom ids, then well-known control tokens.
  auto add_eog = [&](int32_t id) {
    if (id >= 0 && id != t.eos_id && std::find(t.extra_eos_ids.begin(), t.extra_eos_ids.end(), id) == t.extra_eos_ids.end())
      t.extra_eos_ids.push_back(id);
  };
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    auto id = token_id_key(f, key, vocab);
    if (!id) return id.err();
    add_eog(*id);
  }
  static const char* eog_texts[] = {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|endoftext|>", "<|end|>", "<end_of_turn>"};
  for (size_t k = 0; k < vocab; ++k) {
    if (t.types[k] != token_type::control) continue;
    for (const char* s : eog_texts)
      if (t.tokens[k] == s) add_eog(static_cast<int32_t>(k));
  }
  return t;
}

// GGUF tensor name -> Hugging Face name; names without a mapping are kept as they are.
std::string hf_name(const std::string& g, const std::string& arch) {
  if (g == "token_embd.weight") return "model.embed_tokens.weight";
  if (g == "output_norm.weight") return "model.norm.weight";
  if (g == "output.weight") return "lm_head.weight";
  static const std::pair<const char*, const char*> layer_map[] = {
      {"attn_norm", "input_layernorm"},     {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},       {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},       {"attn_output", "self_attn.o_proj"},
      {"attn_q_norm", "self_attn.q_norm"},  {"attn_k_norm", "self_attn.k_norm"},
      {"attn_qkv", "self_attn.qkv_proj"},
      {"ffn_gate", "mlp.gate_proj"},        {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  if (g.rfind("blk.", 0) != 0) return g;
  const size_t dot1 = g.find('.', 4);
  if (dot1 == std::string::npos || dot1 == 4) return g;
  const std::string layer = g.substr(4, dot1 - 4);
  if (!std::all_of(layer.begin(), layer.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) return g;
  const size_t dot2 = g.rfind('.');
  if (dot2 <= dot1) return g;
  const std::string part = g.substr(dot1 + 1, dot2 - dot1 - 1), suffix = g.substr(dot2 + 1);
  // Gemma 3's four norms per layer: llama.cpp's ffn_norm is its pre-feedforward norm there.
  static const std::pair<const char*, const char*> gemma3_map[] = {
      {"ffn_norm", "pre_feedforward_layernorm"},
      {"post_attention_norm", "post_attention_layernorm"},
      {"post_ffw_norm", "post_feedforward_layernorm"},
  };
  if (arch == "gemma3")
    for (const auto& [from, to] : gemma3_map)
      if (part == from) return "model.layers." + layer + "." + to + "." + suffix;
  for (const auto& [from, to] : layer_map)
    if (part == from) return "model.layers." + layer + "." + to + "." + suffix;
  return g;
}

// Design note: convert_hf_to_gguf.py reshapes q/k rows as [n_head, 2, head_dim/2] and swaps the
// last two axes, so GGUF row h*hd + 2j + i holds HF row h*hd + i*hd/2 + j. Reading back inverts it:
// hf[h*hd + i*hd/2 + j] = gguf[h*hd + 2j + i], moving whole rows of `row_len` floats.
template <class T>
void unpermute_rows(std::vector<T>& x, int64_t rows, int64_t row_len, int64_t n_head) {
  const int64_t hd = rows / n_head, half = hd / 2;
  std::vector<T> head(static_cast<size_t>(hd * row_len));  // [hd, row_len] one head, GGUF order
  for (int64_t h = 0; h < n_head; ++h) {
    T* base = x.data() + h * hd * row_len;
    std::copy(base, base + hd * row_len, head.begin());
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j)
        std::copy_n(head.data() + (2 * j + i) * row_len, row_len, base + (i * half + j) * row_len);
  }
}

class gguf_weights final : public weight_source {
 public:
  static result<std::unique_ptr<weight_source>> make(std::shared_ptr<const gguf_file> file) {
    std::unique_ptr<gguf_weights> w(new gguf_weights());
    w->file_ = std::move(file);
    const gguf_file& f = *w->file_;
    int64_t n_head = 0, n_head_kv = 0;
    auto arch = f.get_string("general.architecture");
    if (!arch) return arch.err();
    const bool permuted = arch->has_value() && arch_permutes_qk(**arch);
    if (permuted) {
      TROUPE_TRY(int_key(f, **arch + ".attention.head_count", n_head, true));
      n_head_kv = n_head;
      TROUPE_TRY(int_key(f, **arch + ".attention.head_count_kv", n_head_kv, false));
      if (n_head <= 0 || n_head_kv <= 0)
        return make_error(errc::corrupt_file, f.origin() + ": head counts must be positive");
    }
    // Phi-3 files fuse gate and up into ffn_up ([2 x ffn, hidden], gate rows first, no ffn_gate).
    const bool fused_up = arch->has_value() && **arch == "phi3" && !f.find_tensor("blk.0.ffn_gate.weight");
    for (const gguf_tensor& t : f.tensors()) {
      tensor_info info;
      info.name = hf_name(t.name, arch->value_or(""));
      if (fused_up && t.name.find(".ffn_up.") != std::string::npos)
        info.name.replace(info.name.find("mlp.up_proj"), std::strlen("mlp.up_proj"), "mlp.gate_up_proj");
      info.shape.assign(t.dims.rbegin(), t.dims.rend());
      info.dtype = ggml_type_name(t.type);
      entry e{&t, 0};
      const bool is_q = t.name.find(".attn_q.") != std::string::npos;
      const bool is_k = t.name.find(".attn_k.") != std::string::npos;
      if (permuted && (is_q || is_k)) {
        e.unpermute_heads = is_q ? n_head : n_head_kv;
        const int64_t rows = info.shape[0];
        if (rows % (2 * e.unpermute_heads) != 0)
          return make_error(errc::corrupt_file, f.origin() + ": tensor '" + t.name + "' has " + std::to_string(rows) +
                                                    " rows, not divisible into " + std::to_string(e.unpermute_heads) +
                                                    " heads of even size");
      }
      if (!w->index_.emplace(info.name, w->infos_.size()).second)
        return make_error(errc::corrupt_file, f.origin() + ": two tensors map to '" + info.name + "'");
      w->infos_.push_back(std::move(info));
      w->entries_.push_back(e);
    }
    return std::unique_ptr<weight_source>(std::move(w));
  }

  const std::vector<tensor_info>& tensors() const override { return infos_; }
  std::string origin() const override { return file_->origin(); }
  bool has_raw_blocks() const override { return true; }

  status read_f32(const std::string& name, std::vector<float>& out) const override {
    auto it = index_.find(name);
    if (it == index_.end()) return make_error(errc::not_found, file_->origin() + ": no tensor '" + name + "'");
    const entry& e = entries_[it->second];
    const gguf_tensor& t = *e.tensor;
    if (const ggml_type_traits* tt = ggml_type_info(t.type); !tt || !tt->can_dequantize)
      return make_error(errc::unsupported, file_->origin() + ": tensor '" + t.name + "' has type " +
                                               ggml_type_name(t.type) + ", which troupe cannot load (supported: " +
                                               readable_type_names() + ")");
    out.resize(static_cast<size_t>(t.num_elements));
    auto st = dequantize_to_f32(t.type, t.data, t.num_elements, out.data());
    if (!st) return make_error(st.err().code, file_->origin() + ": tensor '" + t.name + "': " + st.err().message);
    if (e.unpermute_heads > 0) {
      const int64_t rows = infos_[it->second].shape[0];
      unpermute_rows(out, rows, rows > 0 ? t.num_elements / rows : 0, e.unpermute_heads);
    }
    return ok_status();
  }

  // In place only when no q/k unpermutation applies: the file's rows are then HF's rows. The
  // mapping stays alive through the gguf_file it belongs to (shared with this source).
  std::optional<tensor_bytes> view(const std::string& name) const override {
    auto it = index_.find(name);
    if (it == index_.end() || entries_[it->second].unpermute_heads > 0) return std::nullopt;
    const gguf_tensor& t = *entries_[it->second].tensor;
    return tensor_bytes{t.data, t.num_bytes, infos_[it->second].dtype, file_};
  }

  // Quantized rows are independent (whole blocks per row), so the q/k unpermutation moves rows of
  // bytes exactly as it moves rows of floats.
  status read_raw(const std::string& name, uint32_t& type, std::vector<uint8_t>& out) const override {
    auto it = index_.find(name);
    if (it == index_.end()) return make_error(errc::not_found, file_->origin() + ": no tensor '" + name + "'");
    const entry& e = entries_[it->second];
    const gguf_tensor& t = *e.tensor;
    const int64_t rows = infos_[it->second].shape.empty() ? 1 : infos_[it->second].shape[0];
    const int64_t rb = rows > 0 ? ggml_row_bytes(t.type, t.num_elements / rows) : -1;
    const int64_t bytes = rb * rows;
    if (rb < 0 || static_cast<uint64_t>(bytes) > t.num_bytes)
      return make_error(errc::corrupt_file, file_->origin() + ": tensor '" + t.name + "' (" + ggml_type_name(t.type) +
                                                ") rows are not whole blocks");
    type = t.type;
    out.assign(t.data, t.data + bytes);
    if (e.unpermute_heads > 0) unpermute_rows(out, rows, rb, e.unpermute_heads);
    return ok_status();
  }

 private:
  struct entry {
    const gguf_tensor* tensor;
    int64_t unpermute_heads;  // 0: stored as HF stores it; else the head count to unpermute by
  };
  gguf_weights() = default;

  std::shared_ptr<const gguf_file> file_;
  std::vector<tensor_info> infos_;  // HF view, in file order
  std::vector<entry> entries_;      // parallel to infos_
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace

result<model_config> read_gguf_model_config(const std::filesystem::path& path) {
  auto f = gguf_file::open(path);
  if (!f) return f.err();
  return config_from(**f);
}

result<tokenizer_data> read_gguf_tokenizer_data(const std::filesystem::path& path) {
  auto f = gguf_file::open(path);
  if (!f) return f.err();
  return tokenizer_from(**f);
}

result<std::unique_ptr<weight_source>> open_gguf_weights(const std::filesystem::path& path) {
  auto f = gguf_file::open(path);
  if (!f) return f.err();
  return gguf_weights::make(std::move(*f));
}

}  // namespace troupe
