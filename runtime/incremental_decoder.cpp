// incremental_decoder: per-token pieces from tokenizer::token_to_piece, cut at the last complete
// UTF-8 character. Design note: a truncated sequence at the end may still be completed by later
// tokens, so only bytes that are invalid whatever follows are replaced before flush().
#include "runtime/incremental_decoder.h"

#include "runtime/pretokenizer.h"
#include "runtime/tokenizer.h"

namespace troupe {

namespace {

const char* const k_replacement = "\xEF\xBF\xBD";

// True when s (shorter than the sequence its first byte announces) could still become valid.
bool may_complete(std::string_view s) {
  auto c = static_cast<unsigned char>(s[0]);
  size_t need = (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
  if (need == 0 || s.size() >= need) return false;
  for (size_t i = 1; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) return false;
  if (s.size() >= 2) {  // the second byte's range rules out overlongs and surrogates
    auto d = static_cast<unsigned char>(s[1]);
    if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F) || (c == 0xF0 && d < 0x90) || (c == 0xF4 && d > 0x8F))
      return false;
  }
  return true;
}

}  // namespace

incremental_decoder::incremental_decoder(const tokenizer& tok, bool skip_special)
    : tok_(&tok), skip_special_(skip_special) {}

std::string incremental_decoder::push(int32_t id) {
  std::string piece = tok_->token_to_piece(id, skip_special_);
  if (first_ && !piece.empty()) {
    if (tok_->strips_leading_space() && piece[0] == ' ') piece.erase(0, 1);
    first_ = false;
  }
  pending_ += piece;
  return take_complete(false);
}

std::string incremental_decoder::flush() { return take_complete(true); }

std::string incremental_decoder::take_complete(bool at_end) {
  std::string out;
  size_t i = 0;
  std::string_view p(pending_);
  while (i < p.size()) {
    size_t n = utf8_sequence_length(p.substr(i));
    if (n > 0) {
      out.append(p.substr(i, n));
      i += n;
      continue;
    }
    if (!at_end && may_complete(p.substr(i))) break;  // wait for the rest of the character
    out += k_replacement;
    ++i;
  }
  pending_.erase(0, i);
  return out;
}

}  // namespace troupe
