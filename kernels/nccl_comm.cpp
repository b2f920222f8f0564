// nccl_group (see nccl_comm.h).
#include "kernels/nccl_comm.h"

#include <string>

#ifdef TROUPE_HAVE_NCCL
#include <nccl.h>
#endif

#include "config/log.h"

namespace troupe {

#ifdef TROUPE_HAVE_NCCL

result<std::shared_ptr<nccl_group>> nccl_group::create(int32_t world) {
  if (world < 1) return make_error(errc::invalid_argument, "NCCL group needs at least one rank");
  std::vector<ncclComm_t> comms(static_cast<size_t>(world));
  std::vector<int> devs(static_cast<size_t>(world));
  for (int i = 0; i < world; ++i) devs[static_cast<size_t>(i)] = i;
  const ncclResult_t r = ncclCommInitAll(comms.data(), world, devs.data());
  if (r != ncclSuccess)
    return make_error(errc::device_error, std::string("ncclCommInitAll over ") + std::to_string(world) +
                                              " GPUs failed: " + ncclGetErrorString(r));
  std::shared_ptr<nccl_group> g(new nccl_group());
  for (ncclComm_t c : comms) g->comms_.push_back(c);
  logger("kernels")->info("NCCL {}: communicators over {} GPU(s)", nccl_version(), world);
  return g;
}

nccl_group::~nccl_group() {
  if (aborted_) return;  // ncclCommAbort freed them
  for (void* c : comms_) ncclCommDestroy(static_cast<ncclComm_t>(c));
}

void nccl_group::abort() {
  if (aborted_) return;
  aborted_ = true;
  for (void* c : comms_) ncclCommAbort(static_cast<ncclComm_t>(c));
}

std::string nccl_version() {
  int v = 0;
  ncclGetVersion(&v);
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

#else

result<std::shared_ptr<nccl_group>> nccl_group::create(int32_t) {
  return make_error(errc::unsupported, "this troupe was built without NCCL: tensor parallelism on GPUs is off");
}
nccl_group::~nccl_group() = default;
void nccl_group::abort() {}
std::string nccl_version() { return "none"; }

#endif

}  // namespace troupe
