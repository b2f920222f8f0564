// The scheduler's one table of the requests it knows: admitted ones by handle (their id and sink),
// by id and by sink, and the ids still waiting for admission, so a request id names at most one
// live request (a duplicate is refused at submit, wherever the first one is).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/actor_addr.hpp>

#include "actors/messages.h"

namespace troupe {

class scheduler_registry {
 public:
  struct admitted {
    std::string id;
    sink_actor sink;
  };

  // Whether `id` is queued or admitted.
  bool contains(const std::string& id) const { return by_id_.count(id) > 0 || queued_.count(id) > 0; }
  void add_queued(const std::string& id) { queued_.insert(id); }
  void remove_queued(const std::string& id) { queued_.erase(id); }

  // Records an admitted request; true when its sink is new (the caller monitors it once).
  bool admit(uint64_t handle, const std::string& id, const sink_actor& sink);
  // Forgets an ended request; true when its sink has no other request left (the caller demonitors).
  bool remove(uint64_t handle);

  const admitted* find(uint64_t handle) const;
  // The admitted request named `id`, or 0.
  uint64_t handle_of(const std::string& id) const;
  // Every admitted request whose sink is `addr` (the sink went down).
  std::vector<uint64_t> handles_of_sink(const caf::actor_addr& addr) const;
  std::vector<uint64_t> handles() const;
  size_t num_admitted() const { return by_handle_.size(); }

 private:
  std::unordered_map<uint64_t, admitted> by_handle_;
  std::unordered_map<std::string, uint64_t> by_id_;
  std::unordered_map<caf::actor_addr, std::vector<uint64_t>> by_sink_;
  std::unordered_set<std::string> queued_;
};

}  // namespace troupe
