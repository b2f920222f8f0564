// plan_for_model: model_config + options -> memory_plan (see model_plan.h).
#include "runtime/model_plan.h"

#include "runtime/host_memory.h"
#include "runtime/tensor_parallel.h"

namespace troupe {

result<memory_plan> plan_for_model(const model_config& cfg, const engine_options& opts,
                                   const std::vector<device_memory>& devices) {
  engine_options o = opts;
  std::vector<std::string> warnings;
  if (o.session_len <= 0) o.session_len = static_cast<int32_t>(cfg.max_position_embeddings);
  if (o.session_len > cfg.max_position_embeddings)
    warnings.push_back("session_len " + std::to_string(o.session_len) + " is beyond the model's " +
                       std::to_string(cfg.max_position_embeddings) + " positions; quality may degrade");
  TROUPE_TRY(check_tensor_parallel(cfg, o.tp));
  auto plan = make_memory_plan(to_plan_shape(cfg), o, resolve_dtype(o.model.dtype, o.device), devices);
  if (!plan) return plan.err();
  plan->warnings.insert(plan->warnings.begin(), warnings.begin(), warnings.end());
  return plan;
}

std::vector<device_memory> simulated_or_host_devices(const engine_options& opts) {
  const size_t n = static_cast<size_t>(opts.tp > 0 ? opts.tp : 1);
  if (opts.device_memory) return std::vector<device_memory>(n, device_memory{*opts.device_memory, *opts.device_memory});
  device_memory host = host_device_memory();
  host.free_bytes /= n;
  host.total_bytes /= n;
  return std::vector<device_memory>(n, host);
}

}  // namespace troupe
