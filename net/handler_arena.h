// handler_arena: memory for the few asio operations a session starts per streamed token (the drain
// posted from an engine thread, the socket write), so they allocate nothing. Asio allocates an operation per post (and one to schedule
// the strand) through the handler's associated allocator; from a thread that is not running the
// io_context its own recycling cache is not available, so without this every post costs heap
// allocations. Slots are claimed with an atomic flag (engine thread) and freed on an I/O thread; a
// request that finds no free slot falls back to the heap. Held by shared_ptr: an operation asio
// keeps after the session is gone (the strand's scheduler) still owns its arena.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace troupe {

class handler_arena {
 public:
  static constexpr std::size_t k_slot_bytes = 384;

  void* allocate(std::size_t n) {
    if (n <= k_slot_bytes) {
      for (slot& s : slots_) {
        bool expected = false;
        if (!s.in_use.load(std::memory_order_relaxed) &&
            s.in_use.compare_exchange_strong(expected, true, std::memory_order_acquire))
          return s.bytes;
      }
    }
    return ::operator new(n);
  }

  void deallocate(void* p) {
    for (slot& s : slots_) {
      if (p == s.bytes) {
        s.in_use.store(false, std::memory_order_release);
        return;
      }
    }
    ::operator delete(p);
  }

 private:
  struct slot {
    alignas(std::max_align_t) unsigned char bytes[k_slot_bytes];
    std::atomic<bool> in_use{false};
  };
  std::array<slot, 4> slots_;  // a drain post (its operation and the strand's), a write, one spare
};

template <class T>
class arena_allocator {
 public:
  using value_type = T;

  explicit arena_allocator(std::shared_ptr<handler_arena> a) noexcept : arena_(std::move(a)) {}
  template <class U>
  arena_allocator(const arena_allocator<U>& other) noexcept : arena_(other.arena()) {}

  T* allocate(std::size_t n) { return static_cast<T*>(arena_->allocate(sizeof(T) * n)); }
  void deallocate(T* p, std::size_t) noexcept { arena_->deallocate(p); }

  const std::shared_ptr<handler_arena>& arena() const noexcept { return arena_; }
  template <class U>
  bool operator==(const arena_allocator<U>& o) const noexcept { return arena_ == o.arena(); }
  template <class U>
  bool operator!=(const arena_allocator<U>& o) const noexcept { return arena_ != o.arena(); }

 private:
  std::shared_ptr<handler_arena> arena_;
};

// A handler whose operations asio allocates from `arena` (its associated allocator).
template <class Handler>
class arena_handler {
 public:
  using allocator_type = arena_allocator<void>;

  arena_handler(std::shared_ptr<handler_arena> arena, Handler h) : arena_(std::move(arena)), h_(std::move(h)) {}
  allocator_type get_allocator() const noexcept { return allocator_type(arena_); }
  template <class... Args>
  void operator()(Args&&... args) {
    h_(std::forward<Args>(args)...);
  }

 private:
  std::shared_ptr<handler_arena> arena_;
  Handler h_;
};

}  // namespace troupe
