// The block-manager actor's behaviour (see block_manager_actor.h). Holders belong to the actor that
// asked for their blocks; a down message from that actor releases all of them.
#include "actors/block_manager_actor.h"

#include <map>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/message_count.h"
#include "config/log.h"
#include "runtime/block_manager_core.h"

namespace troupe {
namespace {

struct block_manager_state {
  std::unique_ptr<block_pool> pool;
  std::map<caf::actor_addr, std::set<uint64_t>> holders_of;  // owner -> holders it leased for
  std::set<uint64_t> reservoirs;  // reservoir holders: their blocks are pre-leased, free to a user
  fault_inject_options faults;  // test-only refusals (--fault-inject refuse_blocks_after=N)
  int64_t num_allocs = 0;       // non-empty allocation requests seen
  static inline const char* name = "block_manager";
};

using bm_pointer = block_manager_actor::stateful_pointer<block_manager_state>;

void remember_owner(bm_pointer self, const block_request& req) {
  auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
  if (!sender) return;
  auto [it, inserted] = self->state.holders_of.try_emplace(sender);
  if (inserted) self->monitor(sender);
  for (const auto& s : req.starts) it->second.insert(s.holder);
}

// Test-only: whether fault injection refuses this (non-empty) allocation request.
bool refuse_by_fault(block_manager_state& st, const block_request& req) {
  const auto& f = st.faults;
  if (f.refuse_blocks_after <= 0 || (req.extends.empty() && req.starts.empty())) return false;
  const int64_t n = ++st.num_allocs;
  return n > f.refuse_blocks_after && (f.refuse_blocks_count < 0 || n <= f.refuse_blocks_after + f.refuse_blocks_count);
}

block_manager_actor::behavior_type block_manager(bm_pointer self, block_pool_options opts, fault_inject_options faults) {
  self->state.pool = std::make_unique<block_pool>(std::move(opts));
  self->state.faults = faults;
  self->set_down_handler([self](caf::down_msg& dm) {
    auto it = self->state.holders_of.find(dm.source);
    if (it == self->state.holders_of.end()) return;
    std::vector<holder_id> holders(it->second.begin(), it->second.end());
    for (holder_id h : holders) self->state.reservoirs.erase(h);
    const int32_t n = self->state.pool->release_all_of_holders(holders);
    logger("block_manager")->warn("lease owner went down: released {} holders ({} blocks)", holders.size(), n);
    self->state.holders_of.erase(it);
  });
  return {
      [self](alloc_atom, const block_request& req) -> caf::result<block_reply> {
        count_message();
        if (refuse_by_fault(self->state, req)) {
          logger("block_manager")->warn("fault injection: refusing allocation request {}", self->state.num_allocs);
          return to_caf_error({errc::out_of_memory, "fault injection: the block manager refused the allocation"});
        }
        remember_owner(self, req);
        return apply_block_request(*self->state.pool, req);
      },
      [self](reserve_atom, uint64_t reservoir, int32_t n) -> block_grant {
        count_message();
        auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        if (sender) {
          auto [it, inserted] = self->state.holders_of.try_emplace(sender);
          if (inserted) self->monitor(sender);
          it->second.insert(reservoir);  // reclaimed with the owner's sequences when it goes down
        }
        self->state.reservoirs.insert(reservoir);
        return apply_block_reserve(*self->state.pool, reservoir, n);
      },
      [self](assign_atom, const block_assignments& a) -> int64_t {
        count_message();
        apply_block_assignments(*self->state.pool, a);
        return self->state.pool->num_available();
      },
      [self](release_atom, const std::vector<uint64_t>& holders) {
        count_message();
        for (uint64_t h : holders) self->state.reservoirs.erase(h);
        self->state.pool->release_all_of_holders(holders);
        auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        auto it = self->state.holders_of.find(sender);
        if (it != self->state.holders_of.end())
          for (auto h : holders) it->second.erase(h);
      },
      [self](commit_atom, const std::vector<block_commit>& commits) {
        count_message();
        apply_block_commits(*self->state.pool, commits);
      },
      [self](stats_atom) -> block_pool_usage {
        // Reservoir blocks are leased but serve no sequence yet: to a user they are free.
        block_pool_usage u = self->state.pool->usage();
        for (uint64_t r : self->state.reservoirs) {
          const auto n = static_cast<int64_t>(self->state.pool->blocks_of(r).size());
          u.num_used -= n;
          u.num_free += n;
        }
        return u;
      },
  };
}

}  // namespace

block_manager_actor spawn_block_manager(caf::actor_system& sys, block_pool_options opts) {
  return sys.spawn(block_manager, std::move(opts), fault_inject_options{});
}

block_manager_actor spawn_block_manager(caf::actor_system& sys, block_pool_options opts, fault_inject_options faults) {
  return sys.spawn(block_manager, std::move(opts), faults);
}

}  // namespace troupe
