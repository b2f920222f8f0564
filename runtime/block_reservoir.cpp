// The block reservoir's bookkeeping (see block_reservoir.h).
#include "runtime/block_reservoir.h"

namespace troupe {

std::optional<block_reply> block_reservoir::assign(const block_request& req, block_assignments& report) {
  if (!enabled() || !req.starts.empty()) return std::nullopt;
  int64_t need = 0;
  for (const auto& e : req.extends) need += e.num_blocks;
  if (need > size()) return std::nullopt;
  block_reply reply;
  reply.extends.reserve(req.extends.size());
  report.reservoir = holder();
  report.grants.clear();
  report.grants.reserve(req.extends.size());
  for (const auto& e : req.extends) {
    block_extend_reply r;
    r.holder = e.holder;
    r.ok = true;
    r.blocks.reserve(static_cast<size_t>(e.num_blocks));
    for (int32_t i = 0; i < e.num_blocks; ++i) {
      r.blocks.push_back(blocks_.front());
      blocks_.pop_front();
    }
    if (!r.blocks.empty()) report.grants.push_back(r);
    reply.extends.push_back(std::move(r));
  }
  return reply;
}

uint64_t block_reservoir::take_back() {
  if (!enabled()) return 0;
  const bool held = !blocks_.empty() || refill_in_flight_;
  const uint64_t old = holder();
  blocks_.clear();
  ++epoch_;
  // A refill of the old holder may still answer: its blocks come back with the old holder's
  // release (sent after it), and the grant itself is dropped. A new refill may be sent at once.
  refill_in_flight_ = false;
  return held ? old : 0;
}

int32_t block_reservoir::wanted() const {
  if (!enabled() || refill_in_flight_ || size() * 2 >= target_) return 0;
  return target_ - size();
}

void block_reservoir::on_grant(const block_grant& g) {
  if (g.holder != holder()) return;  // an older holder's: released already
  refill_in_flight_ = false;
  blocks_.insert(blocks_.end(), g.blocks.begin(), g.blocks.end());
}

}  // namespace troupe
