// Reads model architecture metadata from config.json (HF) or dispatches to the GGUF reader.
// Accepts both the older top-level rope_theta/rope_scaling and transformers 5's rope_parameters.
#include "runtime/model_config.h"

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
    else if (a.rfind("Mistral", 0) == 0) type = "mistral";
    else if (a.rfind("Llama", 0) == 0) type = "llama";
    else if (a.rfind("Gemma3", 0) == 0) type = "gemma3";
  }
  return type;
}

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
  rope.type = type;
  rope.factor = s.value("factor", 1.0);
  rope.low_freq_factor = s.value("low_freq_factor", 1.0);
  rope.high_freq_factor = s.value("high_freq_factor", 4.0);
  auto original = int_key(s, "original_max_position_embeddings", 8192, origin);
  if (!original) return original.err();
  rope.original_max_position_embeddings = *original;
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
    if (c.architecture != "llama" && c.architecture != "qwen2" && c.architecture != "mistral" &&
        c.architecture != "gemma3")
      return make_error(errc::unsupported,
                        origin + ": model_type '" + c.architecture + "' is not supported (llama, qwen2, mistral, gemma3)");
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
    c.head_dim = j.contains("head_dim") && j["head_dim"].is_number_integer() ? j["head_dim"].get<int64_t>()
                 : c.num_heads > 0 ? c.hidden_size / c.num_heads
                                   : 0;
    auto max_pos = int_key(j, "max_position_embeddings", 2048, origin);
    if (!max_pos) return max_pos.err();
    c.max_position_embeddings = *max_pos;
    c.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
    TROUPE_TRY(read_rope(j, c.rope, origin));
    c.tie_word_embeddings = j.value("tie_word_embeddings", false);
    c.attention_bias = c.architecture == "qwen2" ? true : j.value("attention_bias", false);
    if (j.contains("sliding_window") && j["sliding_window"].is_number_integer() &&
        j["sliding_window"].get<int64_t>() > 0 &&
        j.value("use_sliding_window", c.architecture == "mistral"))
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
  if (c.rope.type != "default" && c.rope.type != "llama3" && c.rope.type != "linear")
    return make_error(errc::unsupported, origin + ": rope type '" + c.rope.type + "' is not supported");
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
