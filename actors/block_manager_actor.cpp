// The block-manager actor's behaviour (see block_manager_actor.h). Holders belong to the actor that
// asked for their blocks; a down message from that actor releases all of them.
#include "actors/block_manager_actor.h"

#include <algorithm>
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
  std::unique_ptr<conversation_pins> pins;  // over *pool; budget 0 when off
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

// Blocks an allocation request may take at most (prefix hits ignored): what pins must leave free.
int64_t most_blocks_needed(const block_pool& pool, const block_request& req) {
  int64_t need = 0;
  for (const auto& e : req.extends) need += e.num_blocks;
  for (const auto& s : req.starts) {
    need += pool.blocks_for_tokens(std::min<int64_t>(static_cast<int64_t>(s.tokens.size()), s.chunk_budget));
  }
  return need;
}

// Pins never make a request wait or fail: before a request is applied they give way (oldest
// first), and the available count the scheduler plans with includes what pins alone hold.
void make_room_for(block_manager_state& st, const block_request& req) {
  st.pins->expire(conversation_pins::clock::now());
  if (st.pins->empty()) return;
  const int64_t need = most_blocks_needed(*st.pool, req);
  if (st.pool->num_available() < need) st.pins->make_room(need);
}

block_manager_actor::behavior_type block_manager(bm_pointer self, block_pool_options opts, fault_inject_options faults,
                                                 conversation_pin_options pin_opts) {
  self->state.pool = std::make_unique<block_pool>(std::move(opts));
  self->state.pins = std::make_unique<conversation_pins>(*self->state.pool, pin_opts);
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
        make_room_for(self->state, req);
        block_reply reply = apply_block_request(*self->state.pool, req);
        if (!self->state.pins->empty()) reply.num_available = self->state.pins->num_available_with_pins();
        return reply;
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
        // A refill is not memory pressure: it takes what is free and leaves conversation pins be
        // (an allocation the scheduler cannot serve from its reservoir releases them, see alloc).
        self->state.pins->expire(conversation_pins::clock::now());
        block_grant g = apply_block_reserve(*self->state.pool, reservoir, n);
        if (!self->state.pins->empty()) g.num_available = self->state.pins->num_available_with_pins();
        return g;
      },
      [self](assign_atom, const block_assignments& a) -> int64_t {
        count_message();
        apply_block_assignments(*self->state.pool, a);
        // What the scheduler plans with counts blocks only pins hold: they give way on demand.
        return self->state.pins->empty() ? self->state.pool->num_available()
                                         : self->state.pins->num_available_with_pins();
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
      [self](commit_atom, const block_commit_batch& commits) {
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
        // Prefix-cache statistics are the requests': the lookups pins made are taken out.
        const conversation_pin_stats p = self->state.pins->stats();
        u.prefix_queries -= p.pin_tokens_queried;
        u.prefix_hits -= p.pin_tokens_found;
        return u;
      },
      [self](pin_atom, const conversation_pin_request& r) {
        self->state.pins->pin(r.key, r.tokens, conversation_pins::clock::now());
      },
      [self](unpin_atom, uint64_t key) { self->state.pins->unpin(key); },
      [self](pin_stats_atom) -> conversation_pin_stats {
        self->state.pins->expire(conversation_pins::clock::now());
        return self->state.pins->stats();
      },
  };
}

}  // namespace

block_manager_actor spawn_block_manager(caf::actor_system& sys, block_pool_options opts) {
  return sys.spawn(block_manager, std::move(opts), fault_inject_options{}, conversation_pin_options{0, 0});
}

block_manager_actor spawn_block_manager(caf::actor_system& sys, block_pool_options opts, fault_inject_options faults) {
  return sys.spawn(block_manager, std::move(opts), faults, conversation_pin_options{0, 0});
}

block_manager_actor spawn_block_manager(caf::actor_system& sys, block_pool_options opts, fault_inject_options faults,
                                        conversation_pin_options pins) {
  return sys.spawn(block_manager, std::move(opts), faults, pins);
}

}  // namespace troupe
