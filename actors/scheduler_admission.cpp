// The scheduler's admission (see scheduler_admission.h): request checks, the bounded admission
// queue and its expiry. The backpressure lives here and nowhere else.
#include "actors/scheduler_admission.h"

#include <chrono>

#include "actors/scheduler_step_loop.h"
#include "runtime/sampler.h"

namespace troupe::scheduler_impl {

namespace {

uint64_t admit(sched_pointer self, generation_request req, sink_actor sink, double queue_time_s) {
  auto& st = self->state;
  const std::string id = req.request_id;
  const uint64_t handle = st.core->add_request(std::move(req), queue_time_s);
  if (st.requests.admit(handle, id, sink)) self->monitor(sink);
  return handle;
}

}  // namespace

void admit_from_queue(sched_pointer self) {
  auto& st = self->state;
  while (!st.draining && !st.queue.empty() &&
         static_cast<int32_t>(st.requests.num_admitted()) < st.cfg.max_concurrent_requests) {
    queued_request q = std::move(st.queue.front());
    st.queue.pop_front();
    const double waited = std::chrono::duration<double>(clock_type::now() - q.since).count();
    const uint64_t handle = admit(self, std::move(q.req), q.sink, waited);
    q.rp.deliver(handle);
  }
}

caf::result<uint64_t> on_submit(sched_pointer self, generation_request& req, sink_actor& sink) {
  auto& st = self->state;
  auto reject = [](errc code, std::string msg) -> caf::result<uint64_t> { return to_caf_error({code, std::move(msg)}); };
  if (st.draining) return reject(errc::draining, "the server is shutting down");
  if (req.request_id.empty()) req.request_id = "req-" + std::to_string(st.next_auto_id++);
  if (st.requests.contains(req.request_id))
    return reject(errc::invalid_argument, "duplicate request id '" + req.request_id + "': a request with this id is in flight");
  if (req.n < 1 || req.n > st.cfg.max_n)
    return reject(errc::invalid_argument, "n must be in [1, " + std::to_string(st.cfg.max_n) + "]");
  if (req.prompt_ids.empty()) return reject(errc::invalid_argument, "the prompt is empty");
  for (int32_t id : req.prompt_ids)
    if (id < 0 || id >= st.cfg.vocab_size)
      return reject(errc::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                                std::to_string(st.cfg.vocab_size) + ")");
  if (auto v = validate_sampling_params(req.params, st.cfg.vocab_size); !v) return to_caf_error(v.err());
  const int64_t session = st.cfg.limits.session_len;
  const int64_t len = static_cast<int64_t>(req.prompt_ids.size());
  if (session > 0 && len + req.params.max_tokens > session)
    return reject(errc::context_too_long, "the prompt (" + std::to_string(len) + " tokens) plus max_tokens (" +
                                              std::to_string(req.params.max_tokens) + ") exceeds session_len " +
                                              std::to_string(session));
  if (static_cast<int32_t>(st.requests.num_admitted()) < st.cfg.max_concurrent_requests && st.queue.empty()) {
    const uint64_t h = admit(self, std::move(req), sink, 0.0);
    dispatch(self);
    maybe_step(self);
    return h;
  }
  if (static_cast<int32_t>(st.queue.size()) >= st.cfg.max_queued_requests)
    return reject(errc::overloaded, "the admission queue is full (" + std::to_string(st.queue.size()) +
                                        " waiting, " + std::to_string(st.requests.num_admitted()) + " in flight)");
  auto rp = self->make_response_promise<uint64_t>();
  st.requests.add_queued(req.request_id);
  st.queue.push_back({std::move(req), sink, rp, clock_type::now()});
  arm_tick(self, std::chrono::milliseconds(20));
  return rp;
}

void on_tick(sched_pointer self) {
  auto& st = self->state;
  st.tick_armed = false;
  const auto now = clock_type::now();
  const auto limit = std::chrono::duration<double>(st.cfg.queue_timeout_s);
  while (!st.queue.empty() && now - st.queue.front().since > limit) {  // FIFO: the oldest expire first
    st.queue.front().rp.deliver(to_caf_error(
        {errc::overloaded, "waited " + std::to_string(st.cfg.queue_timeout_s) + " s for admission"}));
    st.requests.remove_queued(st.queue.front().req.request_id);
    st.queue.pop_front();
  }
  maybe_step(self);
  if (!st.queue.empty() || (st.core->has_work() && st.steps_in_flight == 0 && !st.allocating)) arm_tick(self, std::chrono::milliseconds(20));
}

bool cancel_queued(sched_pointer self, const std::string& id) {
  auto& st = self->state;
  for (auto q = st.queue.begin(); q != st.queue.end(); ++q)
    if (q->req.request_id == id) {
      q->rp.deliver(to_caf_error({errc::cancelled, "cancelled while waiting for admission"}));
      st.requests.remove_queued(id);
      st.queue.erase(q);
      return true;
    }
  return false;
}

void drain_queue(sched_pointer self) {
  auto& st = self->state;
  for (auto& q : st.queue) {
    q.rp.deliver(to_caf_error({errc::draining, "the server is shutting down"}));
    st.requests.remove_queued(q.req.request_id);
  }
  st.queue.clear();
}

}  // namespace troupe::scheduler_impl
