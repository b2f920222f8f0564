// The interface every executor computes through: the CPU forward pass (runtime/) and the CUDA one
// (kernels/) implement it; the executor actor owns one. The backend owns its weights and its pool of
// KV blocks, sized once from the memory plan; forward() never allocates KV memory.
#pragma once

#include <cstdint>

#include "config/error.h"
#include "runtime/model_config.h"
#include "runtime/step_batch.h"

namespace troupe {

// What a backend holds, measured (bytes it actually allocated), for /metrics and the start-up log.
struct backend_memory {
  uint64_t weights_bytes = 0;
  uint64_t reserve_bytes = 0;  // device backends; 0 on the CPU (workspaces grow with the step)
  uint64_t kv_bytes = 0;
};

class model_backend {
 public:
  virtual ~model_backend() = default;
  virtual const model_config& config() const = 0;
  // Number of KV blocks this backend holds; block ids in step batches are in [0, num_kv_blocks()).
  virtual int64_t num_kv_blocks() const = 0;
  virtual int64_t block_seq_len() const = 0;
  // Runs one forward pass over `batch`, appending the new tokens' K/V into their blocks, and fills
  // `out` with the requested logits. A failure fails the whole step (the executor reports it).
  virtual status forward(const step_batch& batch, step_logits& out) = 0;
  // Serving: forward(), then every row whose sequence carries its sampler is sampled where it was
  // computed (runtime/step_sampling.h): `out` gets sampled tokens, and rows only for sequences
  // without a sampler. `rows` is the caller's buffer, reused across steps (no B x vocab allocation
  // per step). Only the executor that answers for the step calls it (tensor-parallel rank 0), so
  // each sampler runs exactly once per step. The default runs forward() into `rows` and samples on
  // the host; a device backend may sample elsewhere as long as the answers are the same.
  virtual status forward_sampled(const step_batch& batch, step_logits& rows, step_logits& out);
  virtual backend_memory memory() const { return {}; }
};

}  // namespace troupe
