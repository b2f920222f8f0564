// tokenizer: special-token partitioning, the two encoding paths and decoding.
// Design note: text is first cut into fragments at special/added tokens (longest match wins, as
// llama.cpp's tokenizer_st_partition), then each raw fragment is pre-tokenized and BPE-merged.
#include "runtime/tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "config/log.h"

namespace troupe {

namespace {

const std::string k_space_marker = "\xE2\x96\x81";  // U+2581 "▁"

std::string escape_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    if (c == ' ') out += k_space_marker;
    else out += c;
  }
  return out;
}

std::string unescape_spaces(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, k_space_marker) == 0) { out += ' '; i += 3; }
    else out += text[i++];
  }
  return out;
}

}  // namespace

result<tokenizer> tokenizer::from_data(tokenizer_data data) {
  tokenizer t;
  if (data.tokens.empty()) return make_error(errc::invalid_argument, "tokenizer: empty vocabulary");
  if (data.model == "llama") t.spm_ = true;
  else if (data.model != "gpt2")
    return make_error(errc::unsupported, "tokenizer: model '" + data.model + "' is not supported (gpt2, llama)");
  const int32_t n = static_cast<int32_t>(data.tokens.size());
  if (data.types.size() != data.tokens.size()) data.types.resize(data.tokens.size(), token_type::normal);
  if (!data.scores.empty() && data.scores.size() != data.tokens.size())
    return make_error(errc::corrupt_file, "tokenizer: scores and tokens differ in length");
  for (int32_t* id : {&data.bos_id, &data.eos_id, &data.unk_id, &data.pad_id})
    if (*id >= n) return make_error(errc::corrupt_file, "tokenizer: special token id out of range");
  std::erase_if(data.extra_eos_ids, [&](int32_t id) { return id < 0 || id >= n; });

  if (t.spm_) {
    // Rank by score when the file has scores (GGUF); by merges otherwise (HF tokenizer.json).
    t.bpe_.init(data.tokens, data.merges, data.merges.empty() ? data.scores : std::vector<float>{});
    t.byte_tokens_.assign(256, -1);
  } else {
    t.bpe_.init(data.tokens, data.merges, {});
    auto p = pretokenizer::make(data.pre);
    if (!p) return p.err();
    t.pre_ = std::move(*p);
  }
  t.added_by_byte_.resize(256);
  for (int32_t id = 0; id < n; ++id) {
    const std::string& text = data.tokens[id];
    token_type type = data.types[id];
    if (t.spm_ && type == token_type::byte) {
      unsigned v = 0;
      if (text.size() == 6 && std::sscanf(text.c_str(), "<0x%02X>", &v) == 1 && v < 256) t.byte_tokens_[v] = id;
      continue;
    }
    if ((type == token_type::control || type == token_type::user_defined) && !text.empty())
      t.added_by_byte_[static_cast<uint8_t>(text[0])].push_back({text, id, type == token_type::user_defined});
  }
  for (auto& bucket : t.added_by_byte_)
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const added_token& a, const added_token& b) { return a.text.size() > b.text.size(); });
  t.data_ = std::move(data);
  return t;
}

void tokenizer::split_special(std::string_view text, bool parse_special, std::vector<fragment>& out) const {
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const auto& bucket = added_by_byte_[static_cast<uint8_t>(text[i])];
    const added_token* hit = nullptr;
    for (const auto& a : bucket) {
      if ((parse_special || a.always) && text.compare(i, a.text.size(), a.text) == 0) { hit = &a; break; }
    }
    if (hit == nullptr) { ++i; continue; }
    if (i > start) out.push_back({text.substr(start, i - start), -1});
    out.push_back({{}, hit->id});
    i += hit->text.size();
    start = i;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});
}

void tokenizer::byte_fallback(std::string_view raw, std::vector<int32_t>& out) const {
  for (char c : raw) {
    int32_t id = spm_ ? byte_tokens_[static_cast<uint8_t>(c)] : bpe_.find(byte_to_unicode(static_cast<uint8_t>(c)));
    if (id >= 0) out.push_back(id);
    else if (spm_ && data_.unk_id >= 0) out.push_back(data_.unk_id);  // byte-level: dropped, as HF does
  }
}

void tokenizer::encode_byte_level(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<std::string_view> pieces;
  pre_.split(text, pieces);
  for (std::string_view piece : pieces) {
    std::string word = byte_level_encode(piece);
    bpe_.encode(word, out, [this](std::string_view sym, std::vector<int32_t>& o) {
      byte_fallback(byte_level_decode(sym), o);
    });
  }
}

void tokenizer::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  std::string word = escape_spaces(text);
  bpe_.encode(word, out, [this](std::string_view sym, std::vector<int32_t>& o) {
    byte_fallback(sym, o);
  });
}

std::vector<int32_t> tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && data_.add_bos && data_.bos_id >= 0) out.push_back(data_.bos_id);
  std::vector<fragment> fragments;
  split_special(text, parse_special, fragments);
  bool prev_special = true;  // SentencePiece prefixes a space at the start and after special tokens
  for (const fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    if (spm_) {
      if (data_.add_space_prefix && prev_special) {
        std::string prefixed(1, ' ');
        prefixed.append(f.text);
        encode_spm(prefixed, out);
      } else {
        encode_spm(f.text, out);
      }
    } else {
      encode_byte_level(f.text, out);
    }
    prev_special = false;
  }
  if (add_special && data_.add_eos && data_.eos_id >= 0) out.push_back(data_.eos_id);
  return out;
}

std::string tokenizer::token_to_piece(int32_t id, bool skip_special) const {
  if (id < 0 || id >= vocab_size()) return {};
  const std::string& text = data_.tokens[id];
  switch (data_.types[id]) {
    case token_type::control:
      return skip_special ? std::string{} : text;
    case token_type::user_defined:
      return text;
    case token_type::unknown:
      return skip_special ? std::string{} : text;
    case token_type::byte:
      if (spm_) {
        unsigned v = 0;
        if (std::sscanf(text.c_str(), "<0x%02X>", &v) == 1) return std::string(1, static_cast<char>(v));
      }
      break;
    default:
      break;
  }
  return spm_ ? unescape_spaces(text) : byte_level_decode(text);
}

std::string tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) out += token_to_piece(id, skip_special);
  if (strips_leading_space() && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

const std::string& tokenizer::token_text(int32_t id) const {
  static const std::string empty;
  return id >= 0 && id < vocab_size() ? data_.tokens[id] : empty;
}

int32_t tokenizer::token_id(std::string_view text) const { return bpe_.find(text); }

std::vector<int32_t> tokenizer::eos_ids() const {
  std::vector<int32_t> ids;
  if (data_.eos_id >= 0) ids.push_back(data_.eos_id);
  for (int32_t id : data_.extra_eos_ids)
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  return ids;
}

bool tokenizer::is_eos(int32_t id) const {
  return id >= 0 && (id == data_.eos_id ||
                     std::find(data_.extra_eos_ids.begin(), data_.extra_eos_ids.end(), id) != data_.extra_eos_ids.end());
}

bool tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && data_.types[id] == token_type::control;
}

}  // namespace troupe
