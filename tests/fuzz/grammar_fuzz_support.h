// Shared check of the grammar fuzz targets: a compiled constraint over a small vocabulary (every
// byte plus a few multi-byte pieces and EOS) is driven for a few steps; a finding is a mask that
// disagrees with accept(), a dead end (no token allowed before termination), or a crash/hang.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "runtime/grammar_matcher.h"

namespace troupe::fuzz {

inline std::shared_ptr<const grammar_vocab> grammar_fuzz_vocab() {
  static const auto v = [] {
    std::vector<std::string> pieces;
    for (int b = 0; b < 256; ++b) pieces.emplace_back(1, static_cast<char>(b));
    for (const char* p : {"{\"", "\":", "\",", "\"}", " \"", "true", "null", "12", "ab", "\xC3\xA9", "\xA9x", "]}"}) {
      pieces.emplace_back(p);
    }
    pieces.emplace_back("");  // EOS
    const int32_t eos = static_cast<int32_t>(pieces.size()) - 1;
    return grammar_vocab::from_pieces(std::move(pieces), {eos});
  }();
  return v;
}

// Steps picked from `seed` bytes: each step checks the mask against accept() on every token.
inline void drive_constraint(const compiled_constraint& c, const uint8_t* seed, size_t seed_size) {
  const auto& v = *grammar_fuzz_vocab();
  auto m = c.start();
  token_mask mask;
  mask.resize(v.vocab_size);
  for (size_t step = 0; step < 6 && !m->is_terminated(); ++step) {
    m->fill_mask(mask);
    std::vector<int32_t> allowed;
    for (int32_t t = 0; t < v.vocab_size; ++t) {
      const bool ok = m->clone()->accept(t);
      if (ok != mask.test(t)) std::abort();
      if (ok) allowed.push_back(t);
    }
    if (allowed.empty()) std::abort();
    const size_t pick = seed_size ? seed[step % seed_size] : step;
    if (!m->accept(allowed[pick % allowed.size()])) std::abort();
  }
}

}  // namespace troupe::fuzz
