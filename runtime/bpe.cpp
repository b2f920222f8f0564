// BPE merging with a priority queue over adjacent symbol pairs (O(n log n) per word, so a long
// run without pre-tokenizer splits cannot stall a request), and the GPT-2 byte mapping.
// Design note: stale queue entries are detected by the pair's combined length, as in llama.cpp.
#include "runtime/bpe.h"

#include "runtime/utf8.h"

#include <array>
#include <queue>

#include "runtime/pretokenizer.h"

namespace troupe {

namespace {

std::string utf8_of(uint32_t cp) {
  std::string s;
  append_utf8(s, cp);
  return s;
}

struct byte_tables {
  std::array<std::string, 256> to_unicode;
  std::array<int, 324> from_unicode;  // codepoints used are < 324
  byte_tables() {
    from_unicode.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? b : 256 + n++;
      to_unicode[b] = utf8_of(cp);
      from_unicode[cp] = b;
    }
  }
};

const byte_tables& tables() {
  static const byte_tables t;
  return t;
}

uint32_t decode_cp(std::string_view s, size_t n) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i])); };
  if (n == 1) return b(0);
  if (n == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  if (n == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
}

}  // namespace

const std::string& byte_to_unicode(uint8_t byte) { return tables().to_unicode[byte]; }

int unicode_to_byte(uint32_t codepoint) {
  return codepoint < tables().from_unicode.size() ? tables().from_unicode[codepoint] : -1;
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_to_unicode(static_cast<uint8_t>(c));
  return out;
}

std::string byte_level_decode(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t n = utf8_sequence_length(text.substr(i));
    if (n == 0) { out += text[i++]; continue; }
    int b = unicode_to_byte(decode_cp(text.substr(i), n));
    if (b >= 0) out += static_cast<char>(b);
    else out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

void bpe_model::init(const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
                     const std::vector<float>& scores) {
  vocab_.clear();
  merges_.clear();
  vocab_.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) vocab_.emplace(tokens[i], static_cast<int32_t>(i));
  if (!scores.empty() && scores.size() == tokens.size()) {
    scores_ = scores;
    return;
  }
  scores_.clear();
  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    size_t sp = m.find(' ', 1);
    if (sp == std::string::npos) continue;
    int32_t a = find(std::string_view(m).substr(0, sp));
    int32_t b = find(std::string_view(m).substr(sp + 1));
    int32_t ab = find(m.substr(0, sp) + m.substr(sp + 1));
    if (a < 0 || b < 0 || ab < 0) continue;
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    merges_.emplace(key, pair_info{static_cast<double>(r), ab});  // first rule wins
  }
}

int32_t bpe_model::find(std::string_view text) const {
  auto it = vocab_.find(std::string(text));
  return it == vocab_.end() ? -1 : it->second;
}

bool bpe_model::pair_of(int32_t left, int32_t right, std::string_view merged_text, pair_info& info) const {
  if (left < 0 || right < 0) return false;
  if (!scores_.empty()) {
    int32_t id = find(merged_text);
    if (id < 0) return false;
    info = pair_info{-static_cast<double>(scores_[id]), id};
    return true;
  }
  auto it = merges_.find((static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right));
  if (it == merges_.end()) return false;
  info = it->second;
  return true;
}

void bpe_model::encode(std::string_view word, std::vector<int32_t>& out, const fallback_fn& fallback) const {
  struct symbol {
    int prev, next;
    size_t start, len;
    int32_t id;
  };
  struct candidate {
    double priority;
    int left, right;
    size_t len;
    int32_t merged;
    bool operator<(const candidate& o) const {  // max-heap: invert for "lowest priority, leftmost"
      return priority != o.priority ? priority > o.priority : left > o.left;
    }
  };
  std::vector<symbol> syms;
  for (size_t i = 0; i < word.size();) {
    size_t n = std::max<size_t>(1, utf8_sequence_length(word.substr(i)));
    n = std::min(n, word.size() - i);
    int idx = static_cast<int>(syms.size());
    syms.push_back(symbol{idx - 1, idx + 1, i, n, find(word.substr(i, n))});
    i += n;
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  std::priority_queue<candidate> queue;
  auto push = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    pair_info info;
    std::string_view text = word.substr(syms[l].start, syms[l].len + syms[r].len);
    if (pair_of(syms[l].id, syms[r].id, text, info))
      queue.push(candidate{info.priority, l, r, text.size(), info.merged});
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) push(static_cast<int>(i), static_cast<int>(i + 1));

  while (!queue.empty()) {
    candidate c = queue.top();
    queue.pop();
    symbol& l = syms[c.left];
    symbol& r = syms[c.right];
    if (l.len == 0 || r.len == 0 || l.next != c.right || l.len + r.len != c.len) continue;  // stale
    l.len += r.len;
    l.id = c.merged;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    push(l.prev, c.left);
    push(c.left, l.next);
  }
  for (int i = 0; i >= 0; i = syms[i].next) {
    if (syms[i].id >= 0) out.push_back(syms[i].id);
    else fallback(word.substr(syms[i].start, syms[i].len), out);
  }
}

}  // namespace troupe
