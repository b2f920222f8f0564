// A scheduler's reservoir of pre-leased KV blocks: blocks the block manager leased to one reservoir
// holder, which the scheduler assigns to its running sequences itself, so a decode step never waits
// for a block-manager reply. The scheduler reports the assignments once per step (asynchronously),
// refills below a low watermark, and gives the whole reservoir back before any allocation that the
// block manager must decide (admission, prefix matches, a reservoir too short for the step).
// Pure bookkeeping: no CAF.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "runtime/block_messages.h"

namespace troupe {

class block_reservoir {
 public:
  // `target` blocks kept on lease (0: no reservoir); refilled when fewer than half remain.
  // Holder ids are `holder_base` | epoch: `holder_base` must set bits no sequence id uses.
  block_reservoir(int32_t target, uint64_t holder_base) : target_(target), base_(holder_base) {}

  bool enabled() const { return target_ > 0; }
  int32_t size() const { return static_cast<int32_t>(blocks_.size()); }
  uint64_t holder() const { return base_ | epoch_; }

  // Serves every extend of `req` (a request without starts) from the reservoir, all or nothing:
  // the reply the block manager would have given, and the assignments to report to it. nullopt
  // when `req` has starts or the reservoir is short (the block manager decides then).
  std::optional<block_reply> assign(const block_request& req, block_assignments& report);

  // Gives everything back: the holder to release at the block manager (0 when nothing can be
  // held under it). Later grants of that holder are ignored (their blocks go back with it).
  uint64_t take_back();

  // Blocks to ask for now (0: none): below the low watermark and no refill already in flight.
  int32_t wanted() const;
  void on_refill_sent() { refill_in_flight_ = true; }
  // A grant for the current holder joins the reservoir; one for an older holder is dropped.
  void on_grant(const block_grant& g);
  void on_refill_failed(uint64_t holder_asked) {
    if (holder_asked == holder()) refill_in_flight_ = false;
  }

 private:
  int32_t target_;
  uint64_t base_;
  uint64_t epoch_ = 1;
  bool refill_in_flight_ = false;
  std::deque<int32_t> blocks_;  // in lease order: assigned from the front
};

}  // namespace troupe
