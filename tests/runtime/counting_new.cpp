// This binary's global operator new: plain malloc, counted while a test asks (allocation_counter.h).
// Every form is replaced, the nothrow ones too: each must come from the same malloc that the
// deletes below free (a sanitizer's own nothrow new freed here is an alloc-dealloc mismatch).
#include <cstdlib>
#include <new>

#include "support/allocation_counter.h"

using troupe::testing::g_allocations;
using troupe::testing::g_counting;

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
