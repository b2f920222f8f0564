// reasoning_parser (see reasoning_parser.h). Design note: only one tag is looked for at a time
// ("<think>" before the span, "</think>" inside it); the text after the last position where that
// tag could still begin is held back, so the split never depends on how the text was chunked.
#include "runtime/reasoning_parser.h"

namespace troupe {
namespace {

constexpr std::string_view k_open = "<think>";
constexpr std::string_view k_close = "</think>";

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  const size_t max = std::min(text.size(), tag.size() - 1);
  for (size_t n = max; n > 0; --n)
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

}  // namespace

void reasoning_parser::emit(reasoning_split& out, std::string_view text) const {
  (state_ == state::reasoning ? out.reasoning : out.content).append(text);
}

reasoning_split reasoning_parser::feed(std::string_view piece) {
  reasoning_split out;
  std::string text = std::move(pending_);
  pending_.clear();
  text.append(piece);
  std::string_view rest = text;
  while (!rest.empty()) {
    if (state_ == state::after) {
      emit(out, rest);
      return out;
    }
    const std::string_view tag = state_ == state::before ? k_open : k_close;
    const size_t at = rest.find(tag);
    if (at == std::string_view::npos) {
      const size_t keep = partial_tag_suffix(rest, tag);
      emit(out, rest.substr(0, rest.size() - keep));
      pending_.assign(rest.substr(rest.size() - keep));
      return out;
    }
    emit(out, rest.substr(0, at));
    rest.remove_prefix(at + tag.size());
    state_ = state_ == state::before ? state::reasoning : state::after;
  }
  return out;
}

reasoning_split reasoning_parser::finish() {
  reasoning_split out;
  emit(out, pending_);
  pending_.clear();
  return out;
}

reasoning_split reasoning_parser::split(std::string_view text, bool start_in_reasoning) {
  reasoning_parser p(start_in_reasoning);
  reasoning_split a = p.feed(text);
  reasoning_split b = p.finish();
  a.reasoning += b.reasoning;
  a.content += b.content;
  return a;
}

}  // namespace troupe
