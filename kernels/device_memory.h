// Device memory of an executor: a few arenas, each one cudaMalloc made at start-up and sized from the
// memory plan (weights, reserve, kv), handing out aligned sub-ranges. Nothing is freed piecemeal;
// a process-wide counter of device allocations lets tests assert that none happen after start-up.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "config/error.h"

namespace troupe {

// cudaMalloc calls made through device_arena since the process started.
uint64_t device_allocation_count();

class device_arena {
 public:
  device_arena() = default;
  ~device_arena();
  device_arena(const device_arena&) = delete;
  device_arena& operator=(const device_arena&) = delete;
  device_arena(device_arena&& o) noexcept;
  device_arena& operator=(device_arena&& o) noexcept;

  // One cudaMalloc of `bytes` on the current device; `name` appears in errors ("weights").
  static result<device_arena> create(const std::string& name, uint64_t bytes);

  // The next `bytes` aligned to `alignment` (a power of two); out_of_memory when the arena is full,
  // naming the arena, the request and what is left.
  result<void*> allocate(uint64_t bytes, uint64_t alignment = 256);

  template <class T>
  result<T*> allocate_array(uint64_t count, uint64_t alignment = 256) {
    auto p = allocate(count * sizeof(T), alignment);
    if (!p) return p.err();
    return static_cast<T*>(*p);
  }

  void* base() const { return base_; }
  uint64_t capacity() const { return capacity_; }
  uint64_t used() const { return used_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  void* base_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t used_ = 0;
};

}  // namespace troupe
