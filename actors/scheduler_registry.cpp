// The scheduler's request table (see scheduler_registry.h).
#include "actors/scheduler_registry.h"

#include <algorithm>

namespace troupe {

bool scheduler_registry::admit(uint64_t handle, const std::string& id, const sink_actor& sink) {
  queued_.erase(id);
  by_handle_[handle] = {id, sink};
  by_id_[id] = handle;
  auto& hs = by_sink_[caf::actor_cast<caf::actor_addr>(sink)];
  hs.push_back(handle);
  return hs.size() == 1;
}

bool scheduler_registry::remove(uint64_t handle) {
  auto it = by_handle_.find(handle);
  if (it == by_handle_.end()) return false;
  if (auto id = by_id_.find(it->second.id); id != by_id_.end() && id->second == handle) by_id_.erase(id);
  bool last = false;
  auto s = by_sink_.find(caf::actor_cast<caf::actor_addr>(it->second.sink));
  if (s != by_sink_.end()) {
    auto& hs = s->second;
    hs.erase(std::remove(hs.begin(), hs.end(), handle), hs.end());
    if (hs.empty()) {
      by_sink_.erase(s);
      last = true;
    }
  }
  by_handle_.erase(it);
  return last;
}

const scheduler_registry::admitted* scheduler_registry::find(uint64_t handle) const {
  auto it = by_handle_.find(handle);
  return it == by_handle_.end() ? nullptr : &it->second;
}

uint64_t scheduler_registry::handle_of(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? 0 : it->second;
}

std::vector<uint64_t> scheduler_registry::handles_of_sink(const caf::actor_addr& addr) const {
  auto it = by_sink_.find(addr);
  return it == by_sink_.end() ? std::vector<uint64_t>{} : it->second;
}

std::vector<uint64_t> scheduler_registry::handles() const {
  std::vector<uint64_t> out;
  out.reserve(by_handle_.size());
  for (const auto& [h, a] : by_handle_) out.push_back(h);
  return out;
}

}  // namespace troupe
