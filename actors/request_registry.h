// The engine side's one id -> request mapping, shared by `engine` and `cluster_engine`: submit
// (refusing an id that is still in flight), cancel by id, and forgetting a request once its last
// choice ended or it failed. Thread-safe: the listener's threads submit and cancel, actor threads
// end requests.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "actors/engine.h"
#include "actors/messages.h"

namespace troupe {

class request_registry {
 public:
  // Spawns the request's sink with the callbacks the registry wraps (they forget the id at the end).
  using spawn_fn = std::function<sink_actor(generation_request, event_callback, error_callback)>;

  // Names an unnamed request ("req-N"); refuses an id that is in flight with invalid_argument (its
  // first owner stays cancellable); else spawns the sink and remembers it until the request ends.
  void submit(generation_request req, event_callback on_event, error_callback on_error, const spawn_fn& spawn);
  // Sends a cancel to the request's sink (which forwards it after its own submit). Unknown: ignored.
  void cancel(const std::string& request_id);
  void cancel_all();
  // Tells every live sink `e` and forgets them all (shutdown).
  void fail_all(const error& e);
  void clear();
  bool empty() const;
  size_t size() const;

 private:
  struct entry {
    uint64_t serial = 0;  // which submit registered it: a late forget of an earlier owner is ignored
    sink_actor sink;
  };
  void forget(const std::string& id, uint64_t serial);

  std::atomic<uint64_t> next_id_{1};
  mutable std::mutex mu_;
  uint64_t next_serial_ = 1;
  std::unordered_map<std::string, entry> live_;  // in-flight requests by id
};

}  // namespace troupe
