// Helpers of the kernel tests: the visible skip without a GPU, RAII device buffers, random data
// rounded to the device dtype (so CPU references see exactly the device's inputs).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include "kernels/host_dtype.h"
#include "kernels/kernel_types.h"

namespace troupe::test {

inline bool have_gpu(std::string& why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    why = cudaGetErrorString(e);
    return false;
  }
  if (n == 0) {
    why = "cudaGetDeviceCount returned 0";
    return false;
  }
  return true;
}

#define TROUPE_REQUIRE_GPU()                                                      \
  do {                                                                            \
    std::string _why;                                                             \
    if (!::troupe::test::have_gpu(_why)) GTEST_SKIP() << "no CUDA device: " << _why; \
  } while (0)

template <class T>
class dev_buf {
 public:
  explicit dev_buf(size_t n) : n_(n) {
    if (cudaMalloc(reinterpret_cast<void**>(&p_), std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) p_ = nullptr;
    if (p_) cudaMemset(p_, 0, std::max<size_t>(n, 1) * sizeof(T));
  }
  explicit dev_buf(const std::vector<T>& v) : dev_buf(v.size()) { upload(v); }
  ~dev_buf() {
    if (p_) cudaFree(p_);
  }
  dev_buf(const dev_buf&) = delete;
  dev_buf& operator=(const dev_buf&) = delete;
  T* get() const { return p_; }
  void upload(const std::vector<T>& v) { cudaMemcpy(p_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> download() const {
    std::vector<T> v(n_);
    cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Uniform values in [lo, hi), rounded to the device dtype.
inline std::vector<float> random_values(size_t n, kernel_dtype dt, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = round_to_device(dt, u(rng));
  return v;
}

inline std::vector<uint16_t> to_bits(const std::vector<float>& v, kernel_dtype dt) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = float_to_device_bits(dt, v[i]);
  return b;
}

inline std::vector<float> from_bits(const std::vector<uint16_t>& b, kernel_dtype dt) {
  std::vector<float> v(b.size());
  for (size_t i = 0; i < b.size(); ++i) v[i] = device_bits_to_float(dt, b[i]);
  return v;
}

inline const char* dt_name(kernel_dtype dt) { return kernel_dtype_name(dt); }

}  // namespace troupe::test
