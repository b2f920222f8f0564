// Streaming stop-string matching with hold-back, and the finish-by-token decision (see stop_checker.h).
#include "runtime/stop_checker.h"

#include <algorithm>
#include <utility>

namespace troupe {

size_t incomplete_utf8_tail(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of the last sequence.
  const size_t n = s.size();
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    size_t need = 1;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return need > back ? back : 0;
  }
  return 0;  // only continuation bytes (invalid input): emit as is
}

stop_checker::stop_checker(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
  for (const auto& s : stops_) max_stop_len_ = std::max(max_stop_len_, s.size());
}

size_t stop_checker::held_suffix_len() const {
  if (max_stop_len_ == 0) return 0;
  const std::string_view text(pending_);
  for (size_t len = std::min(text.size(), max_stop_len_ - 1); len > 0; --len) {
    const std::string_view tail = text.substr(text.size() - len);
    for (const auto& s : stops_) {
      if (s.size() > len && std::string_view(s).substr(0, len) == tail) return len;
    }
  }
  return 0;
}

stop_output stop_checker::feed(std::string_view piece, bool check_stops) {
  stop_output out;
  if (done_) return out;
  pending_.append(piece);
  size_t hold = 0;
  if (check_stops && !stops_.empty()) {
    size_t best_start = std::string::npos, best_end = std::string::npos;
    for (size_t i = 0; i < stops_.size(); ++i) {
      const size_t pos = pending_.find(stops_[i]);
      if (pos == std::string::npos) continue;
      const size_t end = pos + stops_[i].size();
      if (end < best_end || (end == best_end && pos < best_start)) {
        best_start = pos;
        best_end = end;
        stop_index_ = static_cast<int32_t>(i);
      }
    }
    if (best_start != std::string::npos) {
      out.text = pending_.substr(0, best_start);
      out.stopped = true;
      out.stop_index = stop_index_;
      pending_.clear();
      done_ = true;
      return out;
    }
    hold = held_suffix_len();
  }
  hold = std::max(hold, incomplete_utf8_tail(pending_));
  out.text = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string stop_checker::flush() {
  if (done_) return {};
  done_ = true;
  std::string out = std::move(pending_);
  pending_.clear();
  if (size_t bad = incomplete_utf8_tail(out); bad > 0) {
    out.resize(out.size() - bad);
    out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
  }
  return out;
}

bool is_length_finish(token_finish f) {
  return f == token_finish::max_tokens || f == token_finish::session_len;
}

token_finish check_token_finish(const sampling_params& p, const token_stop_rules& rules, int32_t token,
                                int32_t num_generated, int64_t seq_len) {
  if (num_generated >= p.min_tokens) {
    if (!p.ignore_eos && std::find(rules.eos_ids.begin(), rules.eos_ids.end(), token) != rules.eos_ids.end()) {
      return token_finish::eos;
    }
    if (std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end()) {
      return token_finish::stop_token;
    }
  }
  if (num_generated >= p.max_tokens) return token_finish::max_tokens;
  if (rules.session_len > 0 && seq_len >= rules.session_len) return token_finish::session_len;
  return token_finish::none;
}

}  // namespace troupe
