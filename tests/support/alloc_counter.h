// Heap allocations made by the calling thread while counting is on: the runtime test binary's
// operator new (tests/runtime/alloc_counter.cpp) counts them, so a test can check that a hot path
// allocates nothing. Other threads and other tests are unaffected.
#pragma once

#include <cstdint>

namespace troupe::testing {

void count_allocations(bool on);  // starts (resetting the count) or stops counting on this thread
int64_t counted_allocations();

}  // namespace troupe::testing
