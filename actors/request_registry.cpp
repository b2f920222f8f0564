// The engine-side request registry (see request_registry.h).
#include "actors/request_registry.h"

#include <algorithm>
#include <memory>

#include <caf/send.hpp>

namespace troupe {

void request_registry::submit(generation_request req, event_callback on_event, error_callback on_error,
                              const spawn_fn& spawn) {
  if (req.request_id.empty()) req.request_id = "req-" + std::to_string(next_id_.fetch_add(1));
  const std::string id = req.request_id;
  const int32_t n = std::max(1, req.n);
  std::unique_lock<std::mutex> lock(mu_);
  if (live_.count(id)) {
    lock.unlock();
    on_error(error{errc::invalid_argument, "duplicate request id '" + id + "': a request with this id is in flight"});
    return;
  }
  const uint64_t serial = next_serial_++;
  // The sink may end the request (and call forget) before spawn returns: register first.
  entry& e = live_[id];
  e.serial = serial;
  auto finished = std::make_shared<std::atomic<int32_t>>(0);
  auto ev = [this, id, serial, n, finished, on_event = std::move(on_event)](const generation_event& x) {
    on_event(x);
    if (x.finish != finish_reason::none && finished->fetch_add(1) + 1 == n) forget(id, serial);
  };
  auto err = [this, id, serial, on_error = std::move(on_error)](const error& x) {
    on_error(x);
    forget(id, serial);
  };
  // Spawning under the lock keeps a concurrent cancel from finding the entry without its sink; the
  // callbacks run on the sink's thread later and only then take the lock.
  e.sink = spawn(std::move(req), std::move(ev), std::move(err));
}

void request_registry::cancel(const std::string& request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(request_id);
  if (it != live_.end() && it->second.sink) caf::anon_send(it->second.sink, cancel_atom_v, request_id);
}

void request_registry::cancel_all() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, e] : live_)
    if (e.sink) caf::anon_send(e.sink, cancel_atom_v, id);
}

void request_registry::fail_all(const error& err) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, e] : live_)
    if (e.sink) caf::anon_send(e.sink, fail_atom_v, err);
  live_.clear();
}

void request_registry::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  live_.clear();
}

bool request_registry::empty() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.empty();
}

size_t request_registry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.size();
}

void request_registry::forget(const std::string& id, uint64_t serial) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(id);
  if (it != live_.end() && it->second.serial == serial) live_.erase(it);
}

}  // namespace troupe
