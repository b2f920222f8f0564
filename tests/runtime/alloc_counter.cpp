// The runtime test binary's allocation functions (see support/alloc_counter.h): plain malloc/free,
// counted only on a thread that asked. Every form that a sanitizer would otherwise provide is
// replaced, so each allocation is freed by its own family (no alloc-dealloc mismatch under ASan).
#include "support/alloc_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<int64_t> g_allocations{0};
thread_local bool g_counting = false;
}  // namespace

namespace troupe::testing {
void count_allocations(bool on) {
  if (on) g_allocations = 0;
  g_counting = on;
}
int64_t counted_allocations() { return g_allocations.load(); }
}  // namespace troupe::testing

void* operator new(std::size_t n) {
  if (g_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc{};
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (g_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
