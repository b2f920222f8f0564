// Plain C++ vocabulary shared by the CUDA launchers and their callers (compiled by g++ and nvcc):
// the activation dtype tag and the status conversion of CUDA/cuBLAS failures. No device code here.
#pragma once

#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

#include "config/error.h"

namespace troupe {

// Activation and weight dtype on the device; accumulation is always float32.
enum class kernel_dtype : uint8_t { bf16 = 0, f16 = 1 };

inline int kernel_dtype_bytes(kernel_dtype) { return 2; }
inline const char* kernel_dtype_name(kernel_dtype d) { return d == kernel_dtype::bf16 ? "bfloat16" : "float16"; }

// cudaSuccess -> ok; anything else -> errc::device_error naming `what` and the CUDA error.
inline status cuda_status(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return ok_status();
  return make_error(errc::device_error, what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

}  // namespace troupe

// Propagates a failing CUDA call as a status (inside functions returning status/result).
#define TROUPE_CUDA_TRY(expr, what) TROUPE_TRY(::troupe::cuda_status((expr), (what)))
