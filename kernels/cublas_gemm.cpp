// cuBLAS GEMM wrapper: row-major HF layouts mapped onto column-major cuBLAS.
#include "kernels/cublas_gemm.h"

#include <string>

#include <cublas_v2.h>

namespace troupe {
namespace {

status cublas_status(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return ok_status();
  return make_error(errc::device_error, std::string(what) + ": " + cublasGetStatusName(s) + " (" +
                                            cublasGetStatusString(s) + ")");
}

}  // namespace

cublas_gemm::~cublas_gemm() {
  if (handle_) cublasDestroy(handle_);
}

status cublas_gemm::init(cudaStream_t stream, void* workspace, uint64_t workspace_bytes) {
  if (handle_) return make_error(errc::internal, "cublas_gemm::init called twice");
  TROUPE_TRY(cublas_status(cublasCreate(&handle_), "cublasCreate"));
  TROUPE_TRY(cublas_status(cublasSetStream(handle_, stream), "cublasSetStream"));
  // Split-K GEMMs may otherwise add their partial sums in the 16-bit output type: measured on an
  // H100, a bf16 [99 x 200] x [200 x 111] product came out 0.137 where the float sum is 0.122.
  TROUPE_TRY(cublas_status(
      cublasSetMathMode(handle_, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                                           CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
      "cublasSetMathMode"));
  if (workspace && workspace_bytes)
    TROUPE_TRY(cublas_status(cublasSetWorkspace(handle_, workspace, workspace_bytes), "cublasSetWorkspace"));
  return ok_status();
}

// Design note: a row-major [m, n] Y is the column-major n x m matrix Y^T = W X^T, where W ([n, k]
// row-major) is column-major k x n read transposed and X ([m, k] row-major) is column-major k x m.
status cublas_gemm::run(const gemm_args& a) const {
  if (!handle_) return make_error(errc::internal, "cublas_gemm used before init");
  if (a.m == 0 || a.n == 0) return ok_status();
  if (a.m < 0 || a.n < 0 || a.k <= 0 || a.m > INT32_MAX || a.n > INT32_MAX || a.k > INT32_MAX)
    return make_error(errc::invalid_argument, "gemm shape out of range");
  const cudaDataType_t in_t = a.dtype == kernel_dtype::bf16 ? CUDA_R_16BF : CUDA_R_16F;
  const cudaDataType_t out_t = a.y_float32 ? CUDA_R_32F : in_t;
  const int ldx = static_cast<int>(a.ldx ? a.ldx : a.k);
  const int ldy = static_cast<int>(a.ldy ? a.ldy : a.n);
  return cublas_status(
      cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(a.n), static_cast<int>(a.m),
                   static_cast<int>(a.k), &a.alpha, a.w, in_t, static_cast<int>(a.k), a.x, in_t, ldx, &a.beta, a.y,
                   out_t, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx");
}

}  // namespace troupe
