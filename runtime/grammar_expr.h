// Grammar expressions: the tree every front end (JSON Schema, regex, choices, GBNF) builds before it
// is lowered into the flat byte-level grammar (runtime/grammar.h). Terminals are sets of bytes;
// Unicode character classes become alternatives of UTF-8 byte sequences here, so the matcher never
// sees code points and a token that ends inside a multi-byte character simply leaves it half-matched.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe {

// 256 bits, one per byte value.
struct byte_set {
  std::array<uint64_t, 4> bits{};
  void add(uint8_t b) { bits[b >> 6] |= uint64_t{1} << (b & 63); }
  void add_range(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) add(static_cast<uint8_t>(b));
  }
  bool has(uint8_t b) const { return ((bits[b >> 6] >> (b & 63)) & 1) != 0; }
  bool empty() const { return (bits[0] | bits[1] | bits[2] | bits[3]) == 0; }
  friend bool operator==(const byte_set&, const byte_set&) = default;
};

// A set of Unicode code points as sorted, disjoint, non-adjacent inclusive ranges.
class codepoint_set {
 public:
  static constexpr uint32_t k_max = 0x10FFFF;
  void add(uint32_t lo, uint32_t hi);
  void add(uint32_t cp) { add(cp, cp); }
  void add_set(const codepoint_set& o);
  codepoint_set complement() const;  // over [0, 0x10FFFF] minus the surrogates
  bool contains(uint32_t cp) const;
  bool empty() const { return ranges_.empty(); }
  const std::vector<std::pair<uint32_t, uint32_t>>& ranges() const { return ranges_; }

 private:
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;
};

struct gexpr {
  static constexpr uint32_t k_unbounded = 0xFFFFFFFFu;
  enum class kind : uint8_t { bytes, seq, alt, repeat, ref };
  kind k = kind::seq;
  byte_set set;               // kind::bytes
  std::vector<gexpr> items;   // seq, alt: the parts; repeat: exactly one
  uint32_t min = 0;           // repeat
  uint32_t max = 0;           // repeat; k_unbounded for no upper bound
  int32_t rule = -1;          // ref: a rule id of the grammar_builder

  bool is_empty() const { return k == kind::seq && items.empty(); }   // matches ""
  bool is_never() const { return k == kind::alt && items.empty(); }   // matches nothing
};

gexpr g_empty();
gexpr g_never();
gexpr g_byte(uint8_t b);
gexpr g_bytes(const byte_set& s);
gexpr g_lit(std::string_view bytes);          // the bytes in order
gexpr g_seq(std::vector<gexpr> items);        // flattens nested sequences, drops empties
gexpr g_alt(std::vector<gexpr> items);        // flattens nested alternatives, drops nevers
gexpr g_repeat(gexpr x, uint32_t min, uint32_t max);
gexpr g_opt(gexpr x);
gexpr g_star(gexpr x);
gexpr g_plus(gexpr x);
gexpr g_ref(int32_t rule);
gexpr g_codepoints(const codepoint_set& s);   // one character of `s`, as valid UTF-8

}  // namespace troupe
