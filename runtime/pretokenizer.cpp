// Pre-tokenizer regexes (as in llama.cpp's llama-vocab.cpp and HF tokenizer.json) run by PCRE2.
// Design note: every regex splits each current piece into matches and the gaps between them
// ("isolated" splitting), so a sequence of regexes composes like HF's pre_tokenizers.Sequence.
#include "runtime/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config/log.h"

namespace troupe {

namespace {

const char* const k_gpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char* const k_llama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const k_qwen2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

std::vector<const char*> patterns_for(const std::string& pre) {
  if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "command-r") return {"\\p{N}", k_gpt2};
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "falcon3" || pre == "dbrx" ||
      pre == "smaug-bpe")
    return {k_llama3};
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") return {k_qwen2};
  if (pre == "gpt2" || pre == "default" || pre.empty()) return {k_gpt2};
  logger("runtime")->warn("tokenizer: unknown pre-tokenizer '{}', using the GPT-2 regex", pre);
  return {k_gpt2};
}

}  // namespace

struct pretokenizer::compiled {
  pcre2_code* code = nullptr;
  ~compiled() { pcre2_code_free(code); }
};

size_t utf8_sequence_length(std::string_view s) {
  if (s.empty()) return 0;
  auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char c = b(0);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
  else return 0;
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  return n;
}

result<pretokenizer> pretokenizer::make(const std::string& pre) {
  pretokenizer p;
  for (const char* pattern : patterns_for(pre)) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    auto c = std::make_shared<compiled>();
    c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
    if (c->code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return make_error(errc::internal, "pre-tokenizer regex does not compile: " +
                                            std::string(reinterpret_cast<char*>(msg)));
    }
    pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE);  // optional: interpreted matching otherwise
    p.regexes_.push_back(std::move(c));
  }
  return p;
}

namespace {

// Splits valid UTF-8 `text` by one regex into matches and gaps.
void split_one(const pcre2_code* code, std::string_view text, std::vector<std::string_view>& out) {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  size_t pos = 0, last = 0;
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (pos < text.size()) {
    int rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t start = ov[0], end = ov[1];
    if (end == start) {  // empty match: step one character
      pos = start + std::max<size_t>(1, utf8_sequence_length(text.substr(start)));
      continue;
    }
    if (start > last) out.push_back(text.substr(last, start - last));
    out.push_back(text.substr(start, end - start));
    pos = last = end;
  }
  if (last < text.size()) out.push_back(text.substr(last));
  pcre2_match_data_free(md);
}

}  // namespace

void pretokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  // Cut the text into maximal valid UTF-8 runs; invalid bytes stand alone.
  std::vector<std::string_view> pieces;
  size_t run = 0, i = 0;
  while (i < text.size()) {
    size_t n = utf8_sequence_length(text.substr(i));
    if (n > 0) { i += n; continue; }
    if (i > run) pieces.push_back(text.substr(run, i - run));
    pieces.push_back(text.substr(i, 1));
    run = ++i;
  }
  if (i > run) pieces.push_back(text.substr(run, i - run));

  std::vector<bool> valid;
  for (auto p : pieces) valid.push_back(!(p.size() == 1 && utf8_sequence_length(p) == 0));
  for (const auto& re : regexes_) {
    std::vector<std::string_view> next;
    std::vector<bool> next_valid;
    for (size_t k = 0; k < pieces.size(); ++k) {
      if (!valid[k]) { next.push_back(pieces[k]); next_valid.push_back(false); continue; }
      size_t before = next.size();
      split_one(re->code, pieces[k], next);
      next_valid.resize(next.size(), true);
      (void)before;
    }
    pieces = std::move(next);
    valid = std::move(next_valid);
  }
  out.insert(out.end(), pieces.begin(), pieces.end());
}

}  // namespace troupe
