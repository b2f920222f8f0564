// HF tokenizer.json -> tokenizer_data: the BPE vocabulary and merges, added tokens (special ->
// control, others -> user_defined), the pre-tokenizer recognised by shape (ByteLevel, Digits +
// ByteLevel, Split regexes of Llama 3 / Qwen2, Metaspace), BOS/EOS and the chat template.
#include "runtime/hf_tokenizer.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config/log.h"

namespace troupe {

namespace {

using json = nlohmann::json;

result<json> load_json(const std::filesystem::path& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (required) return make_error(errc::not_found, "cannot open " + path.string());
    return json(nullptr);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return make_error(errc::corrupt_file, "not valid JSON: " + path.string());
  return j;
}

const json& member(const json& j, const char* key) {
  static const json null_json;
  return j.is_object() && j.contains(key) ? j[key] : null_json;
}

// Walks a (possibly nested Sequence) pre-tokenizer or decoder and collects node types and patterns.
void collect(const json& node, std::vector<const json*>& out) {
  if (!node.is_object()) return;
  out.push_back(&node);
  for (const char* key : {"pretokenizers", "decoders", "normalizers"})
    if (node.contains(key) && node[key].is_array())
      for (const auto& child : node[key]) collect(child, out);
}

std::string split_pattern(const json& node) {
  if (!node.contains("pattern")) return {};
  const json& p = node["pattern"];
  if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) return p["Regex"];
  if (p.is_object() && p.contains("String") && p["String"].is_string()) return p["String"];
  return {};
}

std::string token_content(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"];
  return {};
}

int32_t find_token(const tokenizer_data& d, const std::string& text) {
  if (text.empty()) return -1;
  for (size_t i = 0; i < d.tokens.size(); ++i)
    if (d.tokens[i] == text) return static_cast<int32_t>(i);
  return -1;
}

status read_model(const json& tj, tokenizer_data& d) {
  const json& model = member(tj, "model");
  if (!model.is_object() || model.value("type", std::string("BPE")) != "BPE" || !model.contains("vocab") || !model["vocab"].is_object())
    return make_error(errc::unsupported, "tokenizer.json: only BPE models are supported");
  const json& vocab = model["vocab"];
  d.tokens.assign(vocab.size(), std::string());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) return make_error(errc::corrupt_file, "tokenizer.json: bad vocab id");
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id > (1 << 24)) return make_error(errc::corrupt_file, "tokenizer.json: vocab id out of range");
    if (static_cast<size_t>(id) >= d.tokens.size()) d.tokens.resize(id + 1);
    d.tokens[id] = it.key();
  }
  for (const auto& m : model.value("merges", json::array())) {
    if (m.is_string()) d.merges.push_back(m.get<std::string>());
    else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
      d.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  d.types.assign(d.tokens.size(), token_type::normal);
  if (model.value("byte_fallback", false))
    for (size_t i = 0; i < d.tokens.size(); ++i)
      if (d.tokens[i].size() == 6 && d.tokens[i].rfind("<0x", 0) == 0 && d.tokens[i][5] == '>') d.types[i] = token_type::byte;
  if (model.contains("unk_token") && model["unk_token"].is_string()) d.unk_id = find_token(d, model["unk_token"]);
  return ok_status();
}

void read_pre_tokenizer(const json& tj, tokenizer_data& d) {
  std::vector<const json*> nodes;  // pointers into tj
  collect(member(tj, "pre_tokenizer"), nodes);
  collect(member(tj, "decoder"), nodes);
  collect(member(tj, "normalizer"), nodes);
  bool byte_level = false, digits = false, metaspace = false;
  std::string pattern;
  for (const json* n : nodes) {
    std::string type = n->value("type", std::string());
    if (type == "ByteLevel") byte_level = true;
    else if (type == "Digits" && n->value("individual_digits", false)) digits = true;
    else if (type == "Metaspace") metaspace = true;
    else if (type == "Prepend" && n->value("prepend", std::string()) == "\xE2\x96\x81") d.add_space_prefix = true;
    else if (type == "Split" && pattern.empty()) pattern = split_pattern(*n);
  }
  d.model = byte_level ? "gpt2" : "llama";
  if (metaspace) {
    const json& pre = member(tj, "pre_tokenizer");
    d.add_space_prefix = pre.value("prepend_scheme", std::string("always")) != "never" && pre.value("add_prefix_space", true);
  }
  if (!byte_level) { d.pre = "default"; return; }
  if (digits) d.pre = "smollm";
  else if (pattern.find("\\p{N}{1,3}") != std::string::npos) d.pre = "llama-bpe";
  else if (pattern.find("\\p{N}|") != std::string::npos && pattern.find("(?i:") != std::string::npos) d.pre = "qwen2";
  else if (pattern.empty()) d.pre = "gpt2";
  else {
    logger("runtime")->warn("tokenizer.json: unrecognised Split pattern, using the GPT-2 regex");
    d.pre = "gpt2";
  }
}

// Llama 3's tokenizer.json adds BOS through a TemplateProcessing post-processor.
bool post_processor_adds(const json& tj, const std::string& token) {
  std::vector<const json*> nodes;
  const json& pp = member(tj, "post_processor");
  nodes.push_back(&pp);
  if (pp.is_object() && pp.contains("processors"))
    for (const auto& p : pp["processors"]) nodes.push_back(&p);
  for (const json* n : nodes) {
    if (!n->is_object() || n->value("type", std::string()) != "TemplateProcessing") continue;
    const json& single = n->value("single", json::array());
    if (single.is_array() && !single.empty() && single[0].contains("SpecialToken") &&
        single[0]["SpecialToken"].value("id", std::string()) == token)
      return true;
  }
  return false;
}

}  // namespace

result<tokenizer_data> read_hf_tokenizer_data(const std::filesystem::path& folder) {
  auto tj = load_json(folder / "tokenizer.json", true);
  if (!tj) return tj.err();
  auto cfg = load_json(folder / "tokenizer_config.json", false);
  if (!cfg) return cfg.err();
  auto gen = load_json(folder / "generation_config.json", false);
  if (!gen) return gen.err();

  tokenizer_data d;
  try {
    TROUPE_TRY(read_model(*tj, d));
    read_pre_tokenizer(*tj, d);
    for (const auto& a : tj->value("added_tokens", json::array())) {
      if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content")) continue;
      int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id > (1 << 24)) continue;
      if (static_cast<size_t>(id) >= d.tokens.size()) {
        d.tokens.resize(id + 1);
        d.types.resize(id + 1, token_type::unused);
      }
      d.tokens[id] = a["content"].get<std::string>();
      d.types[id] = a.value("special", false) ? token_type::control : token_type::user_defined;
    }
    const json& c = cfg->is_object() ? *cfg : json::object();
    std::string bos = c.contains("bos_token") ? token_content(c["bos_token"]) : std::string();
    std::string eos = c.contains("eos_token") ? token_content(c["eos_token"]) : std::string();
    d.bos_id = find_token(d, bos);
    d.eos_id = find_token(d, eos);
    if (c.contains("pad_token")) d.pad_id = find_token(d, token_content(c["pad_token"]));
    if (c.contains("unk_token") && d.unk_id < 0) d.unk_id = find_token(d, token_content(c["unk_token"]));
    d.add_bos = c.value("add_bos_token", false) || (!bos.empty() && post_processor_adds(*tj, bos));
    d.add_eos = c.value("add_eos_token", false);
    if (c.contains("chat_template")) {
      const json& ct = c["chat_template"];
      if (ct.is_string()) d.chat_template = ct;
      else if (ct.is_array())
        for (const auto& t : ct)
          if (t.value("name", std::string()) == "default") d.chat_template = t.value("template", std::string());
    }
    if (gen->is_object() && gen->contains("eos_token_id")) {
      const json& e = (*gen)["eos_token_id"];
      std::vector<int32_t> ids;
      if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
      else if (e.is_array())
        for (const auto& v : e)
          if (v.is_number_integer()) ids.push_back(v.get<int32_t>());
      for (int32_t id : ids) {
        if (d.eos_id < 0) d.eos_id = id;
        else if (id != d.eos_id) d.extra_eos_ids.push_back(id);
      }
    }
  } catch (const json::exception& e) {
    return make_error(errc::corrupt_file, std::string("tokenizer.json: ") + e.what());
  }
  return d;
}

}  // namespace troupe
