// What the scheduler asks of the block manager once per step, and the answer: plain data, carried
// inside actor messages (actors/messages.h gives them CAF inspectors) and applied to a block_pool
// by apply_block_request (block_manager_core.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/id_list.h"

namespace troupe {

// A sequence that holds no blocks yet (new, preempted, or a choice forking its parent's prompt).
struct block_start {
  uint64_t holder = 0;
  std::vector<int32_t> tokens;  // all known tokens of the sequence (prompt, then output if preempted)
  int32_t chunk_budget = 0;     // most tokens it may compute this step
  bool match_prefix = false;    // look the full blocks up in the prefix cache first
  uint64_t fork_from = 0;       // != 0: share this holder's first `fork_blocks` blocks instead
  int32_t fork_blocks = 0;
  int32_t reserve_blocks = 0;   // the most blocks it may come to hold: the pool sizes its table once
};

// A running sequence that needs more blocks for this step's tokens.
struct block_extend {
  uint64_t holder = 0;
  int32_t num_blocks = 0;
};

struct block_request {
  std::vector<block_extend> extends;  // served first, in order (running sequences, oldest first)
  std::vector<block_start> starts;    // then these, in order
};

struct block_start_reply {
  uint64_t holder = 0;
  bool ok = false;
  std::vector<int32_t> blocks;     // the holder's whole block table
  int32_t num_cached_tokens = 0;   // tokens already in those blocks (prefix hit or fork)
};

struct block_extend_reply {
  uint64_t holder = 0;
  bool ok = false;
  id_list blocks;  // the new blocks, appended to the table (a decode step's one block: inline)
};

struct block_reply {
  std::vector<block_extend_reply> extends;
  std::vector<block_start_reply> starts;
  int64_t num_available = 0;  // free + evictable after this request
};

// Blocks leased to a scheduler's reservoir (`holder`), which it assigns to its sequences itself.
struct block_grant {
  uint64_t holder = 0;
  std::vector<int32_t> blocks;  // the new blocks (fewer than asked when the pool is short)
  int64_t num_available = 0;    // free + evictable after this grant
};

// Reservoir blocks the scheduler assigned to its sequences this step: each grant's blocks move
// from `reservoir` to the end of grant.holder's table (block_pool::transfer).
struct block_assignments {
  uint64_t reservoir = 0;
  std::vector<block_extend_reply> grants;
};

// Newly full blocks to register in the prefix cache, for every sequence of a step, flat (no heap
// allocation per sequence): entry k commits blocks [first_block, first_block + n) of `holder`,
// n = (tokens_end - tokens_begin) / block_seq_len, whose tokens are tokens[tokens_begin, tokens_end).
// Only the new blocks' tokens travel; the pool chains them onto the holder's committed blocks, so
// first_block must not lie past them (block_pool::commit_blocks).
struct block_commit_batch {
  struct entry {
    uint64_t holder = 0;
    int32_t first_block = 0;
    int64_t tokens_begin = 0, tokens_end = 0;
  };
  std::vector<entry> entries;
  std::vector<int32_t> tokens;

  void add(uint64_t holder, int32_t first_block, std::span<const int32_t> block_tokens) {
    const auto begin = static_cast<int64_t>(tokens.size());
    tokens.insert(tokens.end(), block_tokens.begin(), block_tokens.end());
    entries.push_back({holder, first_block, begin, static_cast<int64_t>(tokens.size())});
  }
  std::span<const int32_t> tokens_of(const entry& e) const {
    return {tokens.data() + e.tokens_begin, static_cast<size_t>(e.tokens_end - e.tokens_begin)};
  }
  bool empty() const { return entries.empty(); }
  void clear() {
    entries.clear();
    tokens.clear();
  }
};

}  // namespace troupe
