// plan_for_model: model_config + options -> memory_plan (see model_plan.h).
#include "runtime/model_plan.h"

#include <map>

#include "config/paths.h"
#include "runtime/host_memory.h"
#include "runtime/model_weights.h"
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
  plan_model_shape shape = to_plan_shape(cfg);
  // Design note: the CPU holds each matrix in its checkpoint's own format (GGUF blocks, bf16), not
  // in the runtime dtype, so a --tp 1 CPU plan counts the bytes load_model_weights will hold, read
  // from the tensors' headers. Dummy weights, sharded ranks (widened to float32) and a config
  // without weights (`troupe plan` of a config.json) keep the formula.
  const std::string path = o.model.model.empty() ? default_model_path() : o.model.model;
  auto src = o.device == "cpu" && o.tp == 1 && o.model.load_format != "dummy"
                 ? open_weights(path)
                 : result<std::unique_ptr<weight_source>>(make_error(errc::unsupported, "formula"));
  // Design note (--mmap): matrices mapped from the file count as weights held, like copies. They
  // are the same bytes resident while the model runs (file-backed page cache instead of anonymous
  // memory); the kernel may evict them under pressure, but then every step re-reads them from disk,
  // so the plan must leave them room all the same. The rule line says which share is which.
  if (src) {
    weight_load_options wo;
    wo.mmap = o.model.mmap;
    auto held = plan_held_weights(cfg, **src, wo);
    if (!held) return held.err();
    shape.held_weight_bytes = held->bytes;
    std::map<std::string, int> formats;
    for (const auto& t : (*src)->tensors()) ++formats[t.dtype];
    for (const auto& [f, n] : formats)
      shape.held_weight_formats += (shape.held_weight_formats.empty() ? "" : ", ") + std::to_string(n) + " " + f;
    shape.held_weight_formats += " tensors, block formats kept as stored when fused parts share one; " +
                                 format_bytes(held->mapped_bytes) + " mapped from the file, " +
                                 format_bytes(held->bytes - held->mapped_bytes) + " copied" +
                                 (o.model.mmap ? " (--mmap)" : "");
  }
  auto plan = make_memory_plan(shape, o, resolve_dtype(o.model.dtype, o.device), devices);
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
