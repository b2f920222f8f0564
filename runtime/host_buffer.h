// A large float buffer in host memory reserved up front and committed page by page on first touch
// (an anonymous mapping): the CPU KV pool of the memory plan costs resident memory only for the
// blocks actually used, and start-up does not spend seconds zero-filling gigabytes.
#pragma once

#include <cstddef>

#include "config/error.h"

namespace troupe {

class host_buffer {
 public:
  host_buffer() = default;
  ~host_buffer();
  host_buffer(host_buffer&& o) noexcept;
  host_buffer& operator=(host_buffer&& o) noexcept;
  host_buffer(const host_buffer&) = delete;
  host_buffer& operator=(const host_buffer&) = delete;

  // Reserves `count` floats, all reading as 0.0f. Fails with out_of_memory naming the size.
  static result<host_buffer> allocate(size_t count);

  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return count_; }

 private:
  float* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace troupe
