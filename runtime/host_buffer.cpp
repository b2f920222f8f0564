// host_buffer: mmap(MAP_ANONYMOUS | MAP_NORESERVE); pages read as zero and are committed on touch.
#include "runtime/host_buffer.h"

#include <sys/mman.h>

#include <utility>

namespace troupe {

host_buffer::~host_buffer() {
  if (data_) ::munmap(data_, count_ * sizeof(float));
}

host_buffer::host_buffer(host_buffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), count_(std::exchange(o.count_, 0)) {}

host_buffer& host_buffer::operator=(host_buffer&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(data_, count_ * sizeof(float));
    data_ = std::exchange(o.data_, nullptr);
    count_ = std::exchange(o.count_, 0);
  }
  return *this;
}

result<host_buffer> host_buffer::allocate(size_t count) {
  host_buffer b;
  if (count == 0) return b;
  void* p = ::mmap(nullptr, count * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (p == MAP_FAILED)
    return make_error(errc::out_of_memory,
                      "cannot reserve " + std::to_string(count * sizeof(float)) + " bytes of host memory");
  b.data_ = static_cast<float*>(p);
  b.count_ = count;
  return b;
}

}  // namespace troupe
