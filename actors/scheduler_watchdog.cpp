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
uint64_t watch_call(sched_pointer self, std::chrono::milliseconds limit, std::function<void()> on_expiry,
                    bool is_step) {
  auto& st = self->state;
  st.calls.push_back({st.next_call_id++, clock_type::now() + limit, std::move(on_expiry), is_step});
  arm_watchdog(self);
  return st.calls.back().id;
}

// The call's answer arrived: false when the watchdog has already failed it (ignore the answer).
bool end_call(sched_pointer self, uint64_t id) {
  auto& calls = self->state.calls;
  for (size_t k = 0; k < calls.size(); ++k)
    if (calls[k].id == id) {
      calls.erase(calls.begin() + static_cast<std::ptrdiff_t>(k));
      return true;
    }
  return false;
}

void restart_step_calls(sched_pointer self, std::chrono::milliseconds limit) {
  const auto deadline = clock_type::now() + limit;
  for (auto& c : self->state.calls)
    if (c.is_step) c.deadline = std::max(c.deadline, deadline);
}

void on_watchdog(sched_pointer self) {
  auto& st = self->state;
  st.watchdog_armed = false;
  // One expiry at a time: an expiry ends a step, which may start (and watch) the next.
  for (;;) {
    const auto now = clock_type::now();
    auto due = std::find_if(st.calls.begin(), st.calls.end(), [now](const watched_call& c) { return now >= c.deadline; });
    if (due == st.calls.end()) break;
    auto expire = std::move(due->on_expiry);
    st.calls.erase(due);
    expire();
  }
  if (!st.calls.empty()) arm_watchdog(self);
}

}  // namespace troupe::scheduler_impl
