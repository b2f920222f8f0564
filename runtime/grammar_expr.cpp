// Grammar expression constructors and the code-point-range to UTF-8 byte-sequence lowering.
#include "runtime/grammar_expr.h"

#include <algorithm>

#include "runtime/utf8.h"

namespace troupe {

void codepoint_set::add(uint32_t lo, uint32_t hi) {
  if (lo > hi) return;
  hi = std::min(hi, k_max);
  if (lo > hi) return;
  ranges_.emplace_back(lo, hi);
  std::sort(ranges_.begin(), ranges_.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (const auto& r : ranges_) {
    if (!merged.empty() && r.first <= merged.back().second + 1) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  ranges_ = std::move(merged);
}

void codepoint_set::add_set(const codepoint_set& o) {
  for (const auto& r : o.ranges_) add(r.first, r.second);
}

codepoint_set codepoint_set::complement() const {
  codepoint_set out;
  uint32_t next = 0;
  for (const auto& r : ranges_) {
    if (r.first > next) out.add(next, r.first - 1);
    next = r.second + 1;
  }
  if (next <= k_max) out.add(next, k_max);
  codepoint_set no_surrogates;
  for (const auto& r : out.ranges_) {
    if (r.second < 0xD800 || r.first > 0xDFFF) {
      no_surrogates.ranges_.push_back(r);
      continue;
    }
    if (r.first < 0xD800) no_surrogates.ranges_.emplace_back(r.first, 0xD7FF);
    if (r.second > 0xDFFF) no_surrogates.ranges_.emplace_back(0xE000, r.second);
  }
  return no_surrogates;
}

bool codepoint_set::contains(uint32_t cp) const {
  for (const auto& r : ranges_) {
    if (cp >= r.first && cp <= r.second) return true;
  }
  return false;
}

gexpr g_empty() { return gexpr{}; }

gexpr g_never() {
  gexpr e;
  e.k = gexpr::kind::alt;
  return e;
}

gexpr g_bytes(const byte_set& s) {
  if (s.empty()) return g_never();
  gexpr e;
  e.k = gexpr::kind::bytes;
  e.set = s;
  return e;
}

gexpr g_byte(uint8_t b) {
  byte_set s;
  s.add(b);
  return g_bytes(s);
}

gexpr g_lit(std::string_view bytes) {
  gexpr e;
  for (char c : bytes) e.items.push_back(g_byte(static_cast<uint8_t>(c)));
  return e;
}

gexpr g_seq(std::vector<gexpr> items) {
  gexpr e;
  for (auto& x : items) {
    if (x.is_never()) return g_never();
    if (x.k == gexpr::kind::seq) {
      for (auto& y : x.items) e.items.push_back(std::move(y));
    } else {
      e.items.push_back(std::move(x));
    }
  }
  if (e.items.size() == 1) return std::move(e.items[0]);
  return e;
}

gexpr g_alt(std::vector<gexpr> items) {
  gexpr e;
  e.k = gexpr::kind::alt;
  for (auto& x : items) {
    if (x.k == gexpr::kind::alt) {
      for (auto& y : x.items) e.items.push_back(std::move(y));
    } else {
      e.items.push_back(std::move(x));
    }
  }
  if (e.items.size() == 1) return std::move(e.items[0]);
  return e;
}

gexpr g_repeat(gexpr x, uint32_t min, uint32_t max) {
  if (max != gexpr::k_unbounded && max < min) return g_never();
  if (max == 0 || x.is_empty()) return g_empty();
  if (x.is_never()) return min == 0 ? g_empty() : g_never();
  if (min == 1 && max == 1) return x;
  gexpr e;
  e.k = gexpr::kind::repeat;
  e.min = min;
  e.max = max;
  e.items.push_back(std::move(x));
  return e;
}

gexpr g_opt(gexpr x) { return g_repeat(std::move(x), 0, 1); }
gexpr g_star(gexpr x) { return g_repeat(std::move(x), 0, gexpr::k_unbounded); }
gexpr g_plus(gexpr x) { return g_repeat(std::move(x), 1, gexpr::k_unbounded); }

gexpr g_ref(int32_t rule) {
  gexpr e;
  e.k = gexpr::kind::ref;
  e.rule = rule;
  return e;
}

namespace {

// Splits [lo, hi] (no surrogates, one encoded length) until each piece is a product of byte
// ranges, the classic utf8-ranges construction, and appends one sequence per piece.
void utf8_pieces(uint32_t lo, uint32_t hi, std::vector<gexpr>& out) {
  if (lo > hi) return;
  for (uint32_t edge : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= edge && hi > edge) {
      utf8_pieces(lo, edge, out);
      utf8_pieces(edge + 1, hi, out);
      return;
    }
  }
  if (hi < 0x80) {
    byte_set s;
    s.add_range(static_cast<uint8_t>(lo), static_cast<uint8_t>(hi));
    out.push_back(g_bytes(s));
    return;
  }
  for (int i = 1; i < 4; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_pieces(lo, lo | m, out);
        utf8_pieces((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_pieces(lo, (hi & ~m) - 1, out);
        utf8_pieces(hi & ~m, hi, out);
        return;
      }
    }
  }
  std::string a, b;
  append_utf8(a, lo);
  append_utf8(b, hi);
  gexpr seq;
  for (size_t i = 0; i < a.size(); ++i) {
    byte_set s;
    s.add_range(static_cast<uint8_t>(a[i]), static_cast<uint8_t>(b[i]));
    seq.items.push_back(g_bytes(s));
  }
  out.push_back(std::move(seq));
}

}  // namespace

gexpr g_codepoints(const codepoint_set& s) {
  std::vector<gexpr> alts;
  byte_set ascii;
  for (const auto& [lo, hi] : s.ranges()) {
    const uint32_t a_hi = std::min<uint32_t>(hi, 0x7F);
    if (lo <= a_hi) ascii.add_range(static_cast<uint8_t>(lo), static_cast<uint8_t>(a_hi));
    uint32_t l = std::max<uint32_t>(lo, 0x80);
    if (l > hi) continue;
    // Surrogates have no UTF-8 encoding.
    if (l < 0xD800 && hi >= 0xD800) {
      utf8_pieces(l, 0xD7FF, alts);
      l = 0xE000;
    } else if (l >= 0xD800 && l <= 0xDFFF) {
      l = 0xE000;
    }
    utf8_pieces(l, hi, alts);
  }
  if (!ascii.empty()) alts.insert(alts.begin(), g_bytes(ascii));
  return g_alt(std::move(alts));
}

}  // namespace troupe
