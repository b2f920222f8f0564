// The fault-injecting model_backend decorator (see fault_injection.h).
#include "actors/fault_injection.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "config/log.h"

namespace troupe {
namespace {

class faulty_backend final : public model_backend {
 public:
  faulty_backend(std::shared_ptr<model_backend> inner, fault_inject_options f) : inner_(std::move(inner)), f_(f) {}

  const model_config& config() const override { return inner_->config(); }
  int64_t num_kv_blocks() const override { return inner_->num_kv_blocks(); }
  int64_t block_seq_len() const override { return inner_->block_seq_len(); }
  backend_memory memory() const override { return inner_->memory(); }

  status forward(const step_batch& batch, step_logits& out) override {
    TROUPE_TRY(inject());
    return inner_->forward(batch, out);
  }
  // The inner backend's own serving path (CUDA samples from pinned rows).
  status forward_sampled(const step_batch& batch, step_logits& rows, step_logits& out) override {
    TROUPE_TRY(inject());
    return inner_->forward_sampled(batch, rows, out);
  }

 private:
  status inject() {
    const int64_t step = steps_.fetch_add(1) + 1;
    if (f_.slow_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(f_.slow_ms));
    if (f_.fail_step > 0 && step >= f_.fail_step && step < static_cast<int64_t>(f_.fail_step) + f_.fail_steps) {
      logger("fault")->warn("fault injection: failing forward step {}", step);
      return make_error(errc::device_error, "fault injection: forward step " + std::to_string(step) + " failed");
    }
    return ok_status();
  }

  std::shared_ptr<model_backend> inner_;
  fault_inject_options f_;
  std::atomic<int64_t> steps_{0};
};

}  // namespace

std::shared_ptr<model_backend> with_step_faults(std::shared_ptr<model_backend> inner, const fault_inject_options& f) {
  if (f.fail_step <= 0 && f.slow_ms <= 0) return inner;
  logger("fault")->warn("TEST-ONLY fault injection on forward steps: fail_step={} fail_steps={} slow_ms={}",
                        f.fail_step, f.fail_steps, f.slow_ms);
  return std::make_shared<faulty_backend>(std::move(inner), f);
}

}  // namespace troupe
