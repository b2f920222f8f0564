// apply_block_request / apply_block_commits (see block_manager_core.h).
#include "runtime/block_manager_core.h"

#include <algorithm>

namespace troupe {

block_reply apply_block_request(block_pool& pool, const block_request& req) {
  block_reply reply;
  reply.extends.reserve(req.extends.size());
  const int32_t bs = pool.block_seq_len();
  for (const auto& e : req.extends) {
    block_extend_reply r;
    r.holder = e.holder;
    r.ok = pool.extend_into(e.holder, e.num_blocks, r.blocks);
    reply.extends.push_back(std::move(r));
  }
  for (const auto& s : req.starts) {
    block_start_reply r;
    r.holder = s.holder;
    pool.release(s.holder);  // a start holds nothing; defends against a stale holder
    int32_t cached = 0;
    if (s.fork_from != 0 && s.fork_blocks > 0) {
      if (pool.fork(s.fork_from, s.holder, s.fork_blocks).ok()) cached = s.fork_blocks * bs;
    } else if (s.match_prefix) {
      auto m = pool.match_prefix(s.holder, s.tokens);
      if (m.ok()) cached = m->num_tokens;
    }
    const int32_t len = static_cast<int32_t>(s.tokens.size());
    const int32_t chunk = std::min(len - cached, s.chunk_budget);
    const int32_t need = pool.blocks_for_tokens(cached + chunk) - static_cast<int32_t>(pool.blocks_of(s.holder).size());
    if (pool.extend(s.holder, std::max(need, 0))) {
      pool.reserve(s.holder, s.reserve_blocks);
      r.ok = true;
      auto table = pool.blocks_of(s.holder);
      r.blocks.assign(table.begin(), table.end());
      r.num_cached_tokens = cached;
    } else {
      pool.release(s.holder);  // all or nothing: give the prefix hit back
    }
    reply.starts.push_back(std::move(r));
  }
  reply.num_available = pool.num_available();
  return reply;
}

void apply_block_commits(block_pool& pool, const block_commit_batch& commits) {
  for (const auto& c : commits.entries)
    if (!pool.blocks_of(c.holder).empty()) (void)pool.commit_blocks(c.holder, c.first_block, commits.tokens_of(c));
}

block_grant apply_block_reserve(block_pool& pool, uint64_t holder, int32_t n) {
  block_grant g;
  g.holder = holder;
  const int32_t take = std::min(n, pool.num_available());
  if (take > 0)
    if (auto got = pool.lease(holder, take)) g.blocks = std::move(*got);
  g.num_available = pool.num_available();
  return g;
}

void apply_block_assignments(block_pool& pool, const block_assignments& a) {
  for (const auto& g : a.grants) (void)pool.transfer(a.reservoir, g.holder, g.blocks);
}

}  // namespace troupe
