// devices_for_plan: host memory, simulated sizes, or the CUDA driver's numbers when built with CUDA.
#include "actors/devices.h"

#include "runtime/model_plan.h"
#ifdef TROUPE_HAVE_CUDA
#include "kernels/device_info.h"
#endif

namespace troupe {

result<std::vector<device_memory>> devices_for_plan(const engine_options& opts) {
  if (opts.device_memory || opts.device == "cpu") return simulated_or_host_devices(opts);
#ifdef TROUPE_HAVE_CUDA
  return query_cuda_devices(opts.tp);
#else
  return make_error(errc::unsupported,
                    "this troupe was built without CUDA; use --device cpu, or --device-memory SIZE to plan for a GPU");
#endif
}

}  // namespace troupe
