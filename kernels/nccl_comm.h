// NCCL communicators for tensor parallelism inside one process: one rank per GPU (devices
// 0..world-1), created together with ncclCommInitAll at start-up, before any executor runs. The
// CUDA model all-reduces its o_proj and down_proj outputs on its own stream through its rank's
// communicator. Built only with NCCL (TROUPE_HAVE_NCCL); without it, --tp > 1 on CUDA is refused.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "config/error.h"

namespace troupe {

class nccl_group {
 public:
  // Communicators over devices 0..world-1 (world 1 included: the NCCL path on one GPU).
  static result<std::shared_ptr<nccl_group>> create(int32_t world);
  ~nccl_group();
  nccl_group(const nccl_group&) = delete;
  nccl_group& operator=(const nccl_group&) = delete;

  int32_t world() const { return static_cast<int32_t>(comms_.size()); }
  void* comm(int32_t rank) const { return comms_.at(static_cast<size_t>(rank)); }  // an ncclComm_t
  // Aborts every communicator: ranks blocked in a collective return with an error. The group is
  // unusable afterwards (a failed step on GPUs is fatal for the group; the process must restart).
  void abort();

 private:
  nccl_group() = default;
  std::vector<void*> comms_;
  bool aborted_ = false;
};

// The NCCL version string ("2.21.5"), for logs.
std::string nccl_version();

}  // namespace troupe
