// Heap allocations counted per test: the runtime tests' operator new (tests/runtime/counting_new.cpp,
// plain malloc) counts while the calling thread has counting on, so other tests are unaffected.
// A test first checks that counting works (a binary without counting_new.cpp counts nothing).
#pragma once

#include <atomic>
#include <cstdint>

namespace troupe::testing {

inline std::atomic<int64_t> g_allocations{0};
inline thread_local bool g_counting = false;

// Counts the allocations `f` makes on this thread.
template <class F>
int64_t allocations_of(F&& f) {
  const int64_t before = g_allocations.load();
  g_counting = true;
  f();
  g_counting = false;
  return g_allocations.load() - before;
}

// Starts (resetting the count) or stops counting on this thread.
inline void count_allocations(bool on) {
  if (on) g_allocations = 0;
  g_counting = on;
}
inline int64_t counted_allocations() { return g_allocations.load(); }

}  // namespace troupe::testing
