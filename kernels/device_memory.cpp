// device_arena: one cudaMalloc per region, bump sub-allocation, the allocation counter.
#include "kernels/device_memory.h"

#include <utility>

#include <cuda_runtime_api.h>

#include "kernels/kernel_types.h"

namespace troupe {
namespace {
std::atomic<uint64_t> g_allocations{0};
}

uint64_t device_allocation_count() { return g_allocations.load(std::memory_order_relaxed); }

device_arena::~device_arena() {
  if (base_) cudaFree(base_);
}

device_arena::device_arena(device_arena&& o) noexcept
    : name_(std::move(o.name_)), base_(std::exchange(o.base_, nullptr)), capacity_(std::exchange(o.capacity_, 0)),
      used_(std::exchange(o.used_, 0)) {}

device_arena& device_arena::operator=(device_arena&& o) noexcept {
  if (this != &o) {
    if (base_) cudaFree(base_);
    name_ = std::move(o.name_);
    base_ = std::exchange(o.base_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    used_ = std::exchange(o.used_, 0);
  }
  return *this;
}

result<device_arena> device_arena::create(const std::string& name, uint64_t bytes) {
  device_arena a;
  a.name_ = name;
  a.capacity_ = bytes;
  if (bytes == 0) return a;
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const cudaError_t e = cudaMalloc(&a.base_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state of a failed allocation
    a.base_ = nullptr;
    return make_error(e == cudaErrorMemoryAllocation ? errc::out_of_memory : errc::device_error,
                      "cudaMalloc of the " + name + " region (" + std::to_string(bytes) + " bytes): " +
                          cudaGetErrorString(e));
  }
  return a;
}

result<void*> device_arena::allocate(uint64_t bytes, uint64_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    return make_error(errc::invalid_argument, "arena alignment must be a power of two");
  const uint64_t start = (used_ + alignment - 1) & ~(alignment - 1);
  if (start > capacity_ || bytes > capacity_ - start)
    return make_error(errc::out_of_memory, "the " + name_ + " region is full: asked for " + std::to_string(bytes) +
                                               " bytes, " + std::to_string(capacity_ - std::min(start, capacity_)) +
                                               " of " + std::to_string(capacity_) + " left");
  used_ = start + bytes;
  return static_cast<void*>(static_cast<char*>(base_) + start);
}

}  // namespace troupe
