// A counting global operator new for the benchmarks that report heap allocations. It replaces the
// program's allocation functions, so include it in exactly one translation unit of a bench program.
// Every heap allocation of the process counts, on every thread (relaxed: the benches read the
// counter around windows of hundreds of steps or tokens, exact enough for an average).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace troupe::bench {
inline std::atomic<uint64_t> g_allocations{0};
inline uint64_t heap_allocations() { return g_allocations.load(std::memory_order_relaxed); }
}  // namespace troupe::bench

void* operator new(std::size_t n) {
  troupe::bench::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc{};
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  troupe::bench::g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
