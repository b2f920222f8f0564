// event_inbox: engine events on their way from the engine's thread to a session's strand. The
// engine thread copies each event into a slot whose strings and vectors keep their capacity from
// earlier events, and asks for one drain when the inbox goes from empty to non-empty; the strand
// takes everything queued at once. So a streaming session costs at most one post per step, and no
// allocation per token once its slots have grown.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "actors/engine.h"

namespace troupe {

class event_inbox {
 public:
  struct entry {
    uint64_t seq = 0;  // the session's generation the event belongs to
    generation_event ev;
  };

  // Copies `ev` in, its choice index shifted by `index_base`. True when the inbox was empty: the
  // caller posts one drain (later pushes ride on it until it runs).
  bool push(uint64_t seq, const generation_event& ev, int32_t index_base) {
    std::lock_guard<std::mutex> lock(mu_);
    if (used_ == items_.size()) items_.emplace_back();
    entry& e = items_[used_++];
    e.seq = seq;
    e.ev = ev;  // copy-assignment: reuses the slot's buffers
    e.ev.index += index_base;
    return used_ == 1;
  }

  // Swaps the queued events into `out` and returns how many of its first entries they are; the
  // entries `out` held before become slots for later pushes.
  size_t take(std::vector<entry>& out) {
    std::lock_guard<std::mutex> lock(mu_);
    out.swap(items_);
    const size_t n = used_;
    used_ = 0;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<entry> items_;  // [0, used_) queued; the rest are spare slots
  size_t used_ = 0;
};

}  // namespace troupe
