// Reads model architecture metadata from config.json (HF) or dispatches to the GGUF reader.
// Accepts both the older top-level rope_theta/rope_scaling and transformers 5's rope_parameters.
#include "runtime/model_config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/gguf_model.h"
#include "runtime/model_config_gemma3.h"

namespace troupe {
namespace {

using json = nlohmann::json;

// An integer key: absent or null gives `def`; a float or out-of-range number is an error naming the
// key (json::value<int64_t> would convert 1e40 to int64_t, which is undefined behaviour).
result<int64_t> int_key(const json& j, const char* key, int64_t def, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return def;
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d == std::floor(d) && d >= -9.0e15 && d <= 9.0e15)
      return static_cast<int64_t>(d);
  }
  return make_error(errc::corrupt_file, origin + ": '" + key + "' must be an integer");
}

std::string arch_from(const json& j) {
  std::string type = j.value("model_type", "");
  if (type == "gemma3_text" || type == "gemma3") return "gemma3";
  if (type.empty() && j.contains("architectures") && j["architectures"].is_array() &&
      !j["architectures"].empty() && j["architectures"][0].is_string()) {
    std::string a = j["architectures"][0].get<std::string>();
    if (a.rfind("Qwen2", 0) == 0) type = "qwen2";
    else if (a.rfind("Qwen3", 0) == 0) type = "qwen3";
    else if (a.rfind("Phi3", 0) == 0) type = "phi3";
    else if (a.rfind("Mistral", 0) == 0) type = "mistral";
    else if (a.rfind("Llama", 0) == 0) type = "llama";
    else if (a.rfind("Gemma3", 0) == 0) type = "gemma3";
  }
  return type;
}

result<std::vector<float>> float_list(const json& s, const char* key, const std::string& origin) {
  std::vector<float> out;
  if (!s.contains(key) || !s[key].is_array())
    return make_error(errc::corrupt_file, origin + ": rope_scaling '" + key + "' must be a list of numbers");
  for (const auto& v : s[key]) {
    if (!v.is_number()) return make_error(errc::corrupt_file, origin + ": rope_scaling '" + key + "' must be a list of numbers");
    out.push_back(v.get<float>());
  }
  return out;
}

// LongRoPE (Phi-3): both factor lists, the attention factor when given, and the original context,
// which Phi-3 configs keep at the top level. resolve_longrope() picks the list once sizes are known.
status read_longrope(const json& j, const json& s, rope_config& rope, const std::string& origin) {
  auto lf = float_list(s, "long_factor", origin);
  if (!lf) return lf.err();
  auto sf = float_list(s, "short_factor", origin);
  if (!sf) return sf.err();
  rope.long_factor = std::move(*lf);
  rope.short_factor = std::move(*sf);
  if (!s.contains("original_max_position_embeddings")) {
    auto top = int_key(j, "original_max_position_embeddings", 0, origin);
    if (!top) return top.err();
    if (*top <= 0)
      return make_error(errc::corrupt_file, origin + ": longrope needs 'original_max_position_embeddings'");
    rope.original_max_position_embeddings = *top;
  }
  rope.factor = 0;  // 0: derived from the context in finish_longrope, as transformers does
  if (s.contains("factor") && s["factor"].is_number()) rope.factor = s["factor"].get<double>();
  rope.attention_factor = 0;
  if (s.contains("attention_factor") && s["attention_factor"].is_number())
    rope.attention_factor = s["attention_factor"].get<double>();
  return ok_status();
}

}  // namespace

// transformers' _compute_longrope_parameters: factor = context / original context when not given;
// attention factor sqrt(1 + ln factor / ln original) (1 when factor <= 1) when not given.
void resolve_longrope(model_config& c) {
  rope_config& r = c.rope;
  if (r.type != "longrope") return;
  const double orig = static_cast<double>(r.original_max_position_embeddings);
  if (r.factor <= 0) r.factor = orig > 0 ? static_cast<double>(c.max_position_embeddings) / orig : 1.0;
  if (r.attention_factor <= 0)
    r.attention_factor = r.factor <= 1.0 || orig <= 1 ? 1.0 : std::sqrt(1.0 + std::log(r.factor) / std::log(orig));
  r.freq_factors = c.max_position_embeddings > r.original_max_position_embeddings ? r.long_factor : r.short_factor;
}

namespace {

status read_rope(const json& j, rope_config& rope, const std::string& origin) {
  // transformers 5: "rope_parameters": {"rope_theta": ..., "rope_type": ..., "factor": ...}
  // older: "rope_theta": ..., "rope_scaling": {"rope_type"|"type": ..., "factor": ...}
  const json* scaling = nullptr;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    scaling = &j["rope_parameters"];
    rope.theta = scaling->value("rope_theta", rope.theta);
  }
  if (j.contains("rope_theta") && j["rope_theta"].is_number()) rope.theta = j["rope_theta"].get<double>();
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) scaling = &j["rope_scaling"];
  if (!scaling) return ok_status();
  const json& s = *scaling;
  std::string type = s.value("rope_type", s.value("type", std::string("default")));
  if (type == "su") type = "longrope";  // Phi-3's first name for it
  rope.type = type;
  rope.factor = s.value("factor", 1.0);
  rope.low_freq_factor = s.value("low_freq_factor", 1.0);
  rope.high_freq_factor = s.value("high_freq_factor", 4.0);
  auto original = int_key(s, "original_max_position_embeddings", 8192, origin);
  if (!original) return original.err();
  rope.original_max_position_embeddings = *original;
  if (type == "longrope") TROUPE_TRY(read_longrope(j, s, rope, origin));
  return ok_status();
}

std::vector<int64_t> ids_of(const json& v) {
  std::vector<int64_t> out;
  if (v.is_number_integer()) out.push_back(v.get<int64_t>());
  else if (v.is_array())
    for (const auto& e : v)
      if (e.is_number_integer()) out.push_back(e.get<int64_t>());
  return out;
}

}  // namespace

result<model_config> parse_hf_config(const std::string& json_text, const std::string& origin) {
  try {
    json j = json::parse(json_text);
    if (!j.is_object()) return make_error(errc::corrupt_file, origin + ": config.json is not a JSON object");
    // Multimodal wrappers keep the language model under text_config.
    if (j.contains("text_config") && j["text_config"].is_object() && !j.contains("hidden_size")) j = j["text_config"];
    model_config c;
    c.architecture = arch_from(j);
    if (!is_supported_architecture(c.architecture))
      return make_error(errc::unsupported, origin + ": model_type '" + c.architecture +
                                               "' is not supported (supported: " + supported_architectures_list() + ")");
    auto need = [&](const char* key, int64_t& out) -> status {
      if (!j.contains(key) || !j[key].is_number_integer())
        return make_error(errc::corrupt_file, origin + ": missing or non-integer '" + key + "'");
      out = j[key].get<int64_t>();
      return ok_status();
    };
    TROUPE_TRY(need("vocab_size", c.vocab_size));
    TROUPE_TRY(need("hidden_size", c.hidden_size));
    TROUPE_TRY(need("intermediate_size", c.intermediate_size));
    TROUPE_TRY(need("num_hidden_layers", c.num_layers));
    TROUPE_TRY(need("num_attention_heads", c.num_heads));
    c.num_kv_heads = j.contains("num_key_value_heads") && j["num_key_value_heads"].is_number_integer()
                         ? j["num_key_value_heads"].get<int64_t>()
                         : c.num_heads;
    const bool explicit_head_dim = j.contains("head_dim") && j["head_dim"].is_number_integer();
    c.head_dim = explicit_head_dim ? j["head_dim"].get<int64_t>() : c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
    if (!explicit_head_dim && c.num_heads > 0 && c.hidden_size % c.num_heads != 0)
      return make_error(errc::corrupt_file, origin + ": 'hidden_size' (" + std::to_string(c.hidden_size) +
                                                ") is not a multiple of 'num_attention_heads' (" +
                                                std::to_string(c.num_heads) + ") and no 'head_dim' is given");
    if (j.contains("partial_rotary_factor") && j["partial_rotary_factor"].is_number() &&
        j["partial_rotary_factor"].get<double>() != 1.0)
      return make_error(errc::unsupported, origin + ": 'partial_rotary_factor' " +
                                               std::to_string(j["partial_rotary_factor"].get<double>()) +
                                               " is not supported (rotary over the whole head only)");
    auto max_pos = int_key(j, "max_position_embeddings", 2048, origin);
    if (!max_pos) return max_pos.err();
    c.max_position_embeddings = *max_pos;
    c.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
    TROUPE_TRY(read_rope(j, c.rope, origin));
    resolve_longrope(c);
    c.qk_norm = c.architecture == "qwen3";
    c.tie_word_embeddings = j.value("tie_word_embeddings", false);
    c.attention_bias = c.architecture == "qwen2" ? true : j.value("attention_bias", false);
    if (j.contains("sliding_window") && j["sliding_window"].is_number_integer() &&
        j["sliding_window"].get<int64_t>() > 0 &&
        j.value("use_sliding_window", c.architecture == "mistral" || c.architecture == "phi3"))
      c.sliding_window = j["sliding_window"].get<int64_t>();
    if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"].get<int64_t>();
    if (j.contains("eos_token_id")) c.eos_token_ids = ids_of(j["eos_token_id"]);
    std::string dt = j.value("torch_dtype", j.value("dtype", std::string("float32")));
    c.source_dtype = dt;
    if (c.architecture == "gemma3") TROUPE_TRY(read_gemma3_hf(j, c, origin));
    TROUPE_TRY(validate_model_config(c, origin));
    return c;
  } catch (const json::exception& e) {
    return make_error(errc::corrupt_file, origin + ": invalid JSON: " + e.what());
  }
}

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> archs = {"llama", "qwen2", "qwen3", "mistral", "phi3", "gemma3"};
  return archs;
}

std::string supported_architectures_list() {
  std::string out;
  for (const auto& a : supported_architectures()) out += (out.empty() ? "" : ", ") + a;
  return out;
}

bool is_supported_architecture(const std::string& arch) {
  const auto& a = supported_architectures();
  return std::find(a.begin(), a.end(), arch) != a.end();
}

status validate_model_config(const model_config& c, const std::string& origin) {
  auto bad = [&](const std::string& what) { return make_error(errc::corrupt_file, origin + ": " + what); };
  if (c.vocab_size <= 0) return bad("vocab_size must be positive");
  if (c.hidden_size <= 0) return bad("hidden_size must be positive");
  if (c.intermediate_size <= 0) return bad("intermediate_size must be positive");
  if (c.num_layers <= 0) return bad("num_hidden_layers must be positive");
  if (c.num_heads <= 0) return bad("num_attention_heads must be positive");
  if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
    return bad("num_key_value_heads (" + std::to_string(c.num_kv_heads) + ") must divide num_attention_heads (" +
               std::to_string(c.num_heads) + ")");
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) return bad("head_dim must be positive and even");
  if (c.max_position_embeddings <= 0) return bad("max_position_embeddings must be positive");
  if (!(c.rms_norm_eps > 0)) return bad("rms_norm_eps must be positive");
  if (!(c.rope.theta > 0)) return bad("rope_theta must be positive");
  if (c.rope.type != "default" && c.rope.type != "llama3" && c.rope.type != "linear" && c.rope.type != "longrope")
    return make_error(errc::unsupported, origin + ": rope type '" + c.rope.type +
                                             "' is not supported (default, linear, llama3, longrope)");
  const size_t half = static_cast<size_t>(c.head_dim / 2);
  if (c.rope.type == "longrope") {
    if (c.rope.long_factor.size() != half)
      return bad("rope_scaling 'long_factor' has " + std::to_string(c.rope.long_factor.size()) +
                 " entries, head_dim / 2 is " + std::to_string(half));
    if (c.rope.short_factor.size() != half)
      return bad("rope_scaling 'short_factor' has " + std::to_string(c.rope.short_factor.size()) +
                 " entries, head_dim / 2 is " + std::to_string(half));
  }
  if (!c.rope.freq_factors.empty() && c.rope.freq_factors.size() != half)
    return bad("rope frequency factors have " + std::to_string(c.rope.freq_factors.size()) +
               " entries, head_dim / 2 is " + std::to_string(half));
  for (float f : c.rope.freq_factors)
    if (!(f > 0) || !std::isfinite(f)) return bad("rope frequency factors must be positive and finite");
  if (!(c.rope.attention_factor > 0) || !std::isfinite(c.rope.attention_factor))
    return bad("rope attention_factor must be positive");
  if (c.sliding_window < 0) return bad("sliding_window must not be negative");
  const int64_t kMax = int64_t{1} << 24;
  if (c.vocab_size > kMax || c.hidden_size > kMax || c.intermediate_size > kMax || c.num_layers > 4096 ||
      c.num_heads > 4096 || c.head_dim > 4096)
    return bad("a dimension is implausibly large");
  if (c.architecture == "gemma3") TROUPE_TRY(validate_gemma3(c, origin));
  return ok_status();
}

result<model_config> read_model_config(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return make_error(errc::not_found, path.string() + ": no such file or folder");
  std::filesystem::path cfg = path;
  if (std::filesystem::is_directory(path, ec)) {
    cfg = path / "config.json";
    if (!std::filesystem::exists(cfg, ec)) {
      // A folder holding a single GGUF file is accepted too.
      for (const auto& e : std::filesystem::directory_iterator(path, ec))
        if (e.path().extension() == ".gguf") return read_gguf_model_config(e.path());
      return make_error(errc::not_found, path.string() + ": no config.json or .gguf file in this folder");
    }
  } else if (path.extension() == ".gguf") {
    return read_gguf_model_config(path);
  }
  std::ifstream in(cfg);
  if (!in) return make_error(errc::io_error, cfg.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  auto r = parse_hf_config(ss.str(), cfg.string());
  if (r.ok() && r->name.empty()) r->name = (std::filesystem::is_directory(path, ec) ? path : path.parent_path()).filename().string();
  return r;
}

}  // namespace troupe
