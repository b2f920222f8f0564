// Gemma 3 (text) configuration from config.json (transformers 4's rope_local_base_freq and
// sliding_window_pattern, transformers 5's layer_types and per-layer-type rope_parameters) and
// from a GGUF header, plus its validation.
#include "runtime/model_config_gemma3.h"

#include <cmath>

#include "runtime/gguf_file.h"

namespace troupe {
namespace {

using json = nlohmann::json;

// A rope sub-object {"rope_theta", "rope_type"|"type", "factor"} into `r` (absent keys keep `r`).
void read_rope_object(const json& s, rope_config& r) {
  if (!s.is_object()) return;
  if (s.contains("rope_theta") && s["rope_theta"].is_number()) r.theta = s["rope_theta"].get<double>();
  const std::string type = s.value("rope_type", s.value("type", std::string("default")));
  r.type = type;
  if (s.contains("factor") && s["factor"].is_number()) r.factor = s["factor"].get<double>();
}

// The GGUF converters and transformers 4 give local layers every layer but each `pattern`-th.
std::vector<uint8_t> pattern_layers(int64_t num_layers, int64_t pattern) {
  std::vector<uint8_t> out(static_cast<size_t>(std::max<int64_t>(num_layers, 0)), 1);
  for (int64_t i = 0; i < num_layers; ++i) out[static_cast<size_t>(i)] = pattern > 0 && (i + 1) % pattern != 0;
  return out;
}

void gemma3_common(model_config& c) {
  c.qk_norm = true;
  c.sandwich_norms = true;
  c.gelu_tanh_mlp = true;
  // transformers computes √hidden in float32 (Gemma3TextScaledWordEmbedding's buffer).
  c.embed_scale = static_cast<double>(std::sqrt(static_cast<float>(c.hidden_size)));
}

}  // namespace

status read_gemma3_hf(const json& j, model_config& c, const std::string& origin) {
  auto bad = [&](const std::string& key, const std::string& what) {
    return make_error(errc::corrupt_file, origin + ": '" + key + "' " + what);
  };
  gemma3_common(c);
  c.norm_weight_offset = 1.0f;  // Gemma3RMSNorm: x̂ · (1 + w)
  c.tie_word_embeddings = j.value("tie_word_embeddings", true);
  const std::string act = j.value("hidden_activation", j.value("hidden_act", std::string("gelu_pytorch_tanh")));
  if (act != "gelu_pytorch_tanh" && act != "gelu_tanh")
    return make_error(errc::unsupported, origin + ": 'hidden_activation' " + act + " is not supported (gelu_pytorch_tanh)");
  if (j.contains("attn_logit_softcapping") && !j["attn_logit_softcapping"].is_null())
    return make_error(errc::unsupported, origin + ": 'attn_logit_softcapping' is not supported (Gemma 3 has none)");

  c.sliding_window = 0;
  if (j.contains("sliding_window") && !j["sliding_window"].is_null()) {
    if (!j["sliding_window"].is_number_integer() || j["sliding_window"].get<int64_t>() <= 0)
      return bad("sliding_window", "must be a positive integer");
    c.sliding_window = j["sliding_window"].get<int64_t>();
  }
  if (j.contains("layer_types")) {
    const json& lt = j["layer_types"];
    if (!lt.is_array()) return bad("layer_types", "must be an array");
    for (const auto& t : lt) {
      if (!t.is_string()) return bad("layer_types", "must hold strings");
      const std::string s = t.get<std::string>();
      if (s != "sliding_attention" && s != "full_attention")
        return bad("layer_types", "holds '" + s + "' (sliding_attention or full_attention)");
      c.layer_sliding.push_back(s == "sliding_attention");
    }
  } else {
    int64_t pattern = 6;
    for (const char* key : {"sliding_window_pattern", "_sliding_window_pattern"})
      if (j.contains(key) && j[key].is_number_integer()) pattern = j[key].get<int64_t>();
    c.layer_sliding = pattern_layers(c.num_layers, pattern);
  }

  // Rotary: the global layers use rope_theta (+ rope_scaling), the local ones rope_local_base_freq
  // with no scaling; transformers 5 nests both under rope_parameters by layer type.
  c.rope_local = rope_config{};
  c.rope_local.theta = j.value("rope_local_base_freq", 10000.0);
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object() &&
      j["rope_parameters"].contains("full_attention")) {
    c.rope = rope_config{};
    c.rope.theta = 1000000.0;
    read_rope_object(j["rope_parameters"]["full_attention"], c.rope);
    if (j["rope_parameters"].contains("sliding_attention"))
      read_rope_object(j["rope_parameters"]["sliding_attention"], c.rope_local);
  }
  if (c.rope_local.type != "default")
    return make_error(errc::unsupported, origin + ": rope type '" + c.rope_local.type + "' of the local layers is not supported");

  c.query_pre_attn_scalar = static_cast<double>(c.head_dim);
  if (j.contains("query_pre_attn_scalar") && !j["query_pre_attn_scalar"].is_null()) {
    if (!j["query_pre_attn_scalar"].is_number()) return bad("query_pre_attn_scalar", "must be a number");
    c.query_pre_attn_scalar = j["query_pre_attn_scalar"].get<double>();
  }
  c.final_logit_softcapping = 0;
  if (j.contains("final_logit_softcapping") && !j["final_logit_softcapping"].is_null()) {
    if (!j["final_logit_softcapping"].is_number()) return bad("final_logit_softcapping", "must be a number or null");
    c.final_logit_softcapping = j["final_logit_softcapping"].get<double>();
  }
  return ok_status();
}

status read_gemma3_gguf(const gguf_file& f, model_config& c) {
  gemma3_common(c);
  c.norm_weight_offset = 0.0f;  // convert_hf_to_gguf.py stores 1 + w
  c.layer_sliding = pattern_layers(c.num_layers, 6);
  if (const gguf_value* v = f.find("gemma3.attention.sliding_window_pattern"); v && v->is_array()) {
    if (v->count != static_cast<uint64_t>(c.num_layers))
      return make_error(errc::corrupt_file, f.origin() + ": key 'gemma3.attention.sliding_window_pattern' has " +
                                                std::to_string(v->count) + " entries for " +
                                                std::to_string(c.num_layers) + " layers");
    for (uint64_t k = 0; k < v->count; ++k) c.layer_sliding[k] = v->int_at(k).value_or(0) != 0;
  }
  c.rope_local = rope_config{};
  auto swa_base = f.get_float("gemma3.rope.freq_base_swa");
  if (!swa_base) return swa_base.err();
  c.rope_local.theta = swa_base->value_or(10000.0);
  // llama.cpp: 1/sqrt(head_dim), but 1/sqrt(hidden / heads) for the 27B model (62 layers).
  c.query_pre_attn_scalar = c.num_layers == 62 && c.num_heads > 0 ? static_cast<double>(c.hidden_size / c.num_heads)
                                                                   : static_cast<double>(c.head_dim);
  auto cap = f.get_float("gemma3.final_logit_softcapping");
  if (!cap) return cap.err();
  c.final_logit_softcapping = cap->value_or(0.0);
  return ok_status();
}

status validate_gemma3(const model_config& c, const std::string& origin) {
  auto bad = [&](const std::string& what) { return make_error(errc::corrupt_file, origin + ": " + what); };
  if (c.layer_sliding.size() != static_cast<size_t>(c.num_layers))
    return bad("'layer_types' has " + std::to_string(c.layer_sliding.size()) + " entries for " +
               std::to_string(c.num_layers) + " layers");
  bool any_local = false;
  for (uint8_t s : c.layer_sliding) any_local = any_local || s;
  if (any_local && c.sliding_window <= 0) return bad("'sliding_window' is missing but the config has local layers");
  if (c.sliding_window > c.max_position_embeddings)
    return bad("'sliding_window' " + std::to_string(c.sliding_window) + " is larger than the context (" +
               "max_position_embeddings " + std::to_string(c.max_position_embeddings) + ")");
  if (!(c.query_pre_attn_scalar > 0)) return bad("'query_pre_attn_scalar' must be positive");
  if (c.final_logit_softcapping < 0) return bad("'final_logit_softcapping' must not be negative");
  if (!(c.rope_local.theta > 0)) return bad("'rope_local_base_freq' must be positive");
  return ok_status();
}

}  // namespace troupe
