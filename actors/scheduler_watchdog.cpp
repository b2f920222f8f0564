// The scheduler's watchdog (see scheduler_watchdog.h): a single delayed message per period, armed
// only while a call is in flight.
#include "actors/scheduler_watchdog.h"

#include <algorithm>

namespace troupe::scheduler_impl {

namespace {

// The watchdog's period: fine enough for the shortest limit, at most one wake-up a second.
std::chrono::milliseconds watchdog_period(const scheduler_config& cfg) {
  const auto shortest = std::min<int64_t>(cfg.step_timeout_ms, alloc_timeout.count());
  return std::chrono::milliseconds(std::clamp<int64_t>(shortest / 8, 1, 1000));
}

void arm_watchdog(sched_pointer self) {
  if (self->state.watchdog_armed) return;
  self->state.watchdog_armed = true;
  self->delayed_send(self, watchdog_period(self->state.cfg), watchdog_atom_v);
}

}  // namespace

// Starts watching a call; `on_expiry` runs (once) if it is still in flight after `limit`.
uint64_t watch_call(sched_pointer self, std::chrono::milliseconds limit, std::function<void()> on_expiry) {
  auto& st = self->state;
  st.call = {st.next_call_id++, clock_type::now() + limit, std::move(on_expiry)};
  arm_watchdog(self);
  return st.call.id;
}

// The call's answer arrived: false when the watchdog has already failed it (ignore the answer).
bool end_call(sched_pointer self, uint64_t id) {
  auto& st = self->state;
  if (st.call.id != id) return false;
  st.call = {};
  return true;
}

void on_watchdog(sched_pointer self) {
  auto& st = self->state;
  st.watchdog_armed = false;
  if (st.call.id != 0 && clock_type::now() >= st.call.deadline) {
    auto expire = std::move(st.call.on_expiry);
    st.call = {};
    expire();
  }
  if (st.call.id != 0) arm_watchdog(self);
}

}  // namespace troupe::scheduler_impl
