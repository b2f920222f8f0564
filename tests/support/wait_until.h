// Test support: wait for an observable condition with a deadline, never for time to pass. Tests
// that sleep a fixed time and hope the other thread got there fail on a loaded machine (CI on two
// busy cores); polling the condition itself is as fast as the machine allows and fails only at the
// deadline, which is generous because reaching it is a failure, not a wait.
#pragma once

#include <chrono>
#include <thread>

namespace troupe::testing {

// Polls `pred` until it returns true or `timeout` passes; returns pred's last value. The pause
// between polls is a poll interval (how often to look), not a guess at how long anything takes.
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds timeout = std::chrono::seconds(20),
                std::chrono::milliseconds poll = std::chrono::milliseconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace troupe::testing
