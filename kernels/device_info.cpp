// query_cuda_devices: asks the CUDA runtime for each rank's memory; errors are values.
#include "kernels/device_info.h"

#include <string>

#include <cuda_runtime_api.h>

namespace troupe {

result<std::vector<device_memory>> query_cuda_devices(int tp) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    return make_error(errc::device_error,
                      std::string("no CUDA device available (") + cudaGetErrorString(e) +
                          "); use --device cpu, or --device-memory SIZE to plan for a GPU");
  if (count < tp)
    return make_error(errc::invalid_argument,
                      "--tp " + std::to_string(tp) + " needs " + std::to_string(tp) + " GPUs, " +
                          std::to_string(count) + " present");
  std::vector<device_memory> out;
  for (int d = 0; d < tp; ++d) {
    size_t free_b = 0, total_b = 0;
    if ((e = cudaSetDevice(d)) != cudaSuccess || (e = cudaMemGetInfo(&free_b, &total_b)) != cudaSuccess)
      return make_error(errc::device_error, "GPU " + std::to_string(d) + ": " + cudaGetErrorString(e));
    out.push_back(device_memory{total_b, free_b});
  }
  return out;
}

}  // namespace troupe
