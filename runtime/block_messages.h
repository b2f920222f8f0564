// What the scheduler asks of the block manager once per step, and the answer: plain data, carried
// inside actor messages (actors/messages.h gives them CAF inspectors) and applied to a block_pool
// by apply_block_request (block_manager_core.h).
#pragma once

#include <cstdint>
#include <vector>

namespace troupe {

// A sequence that holds no blocks yet (new, preempted, or a choice forking its parent's prompt).
struct block_start {
  uint64_t holder = 0;
  std::vector<int32_t> tokens;  // all known tokens of the sequence (prompt, then output if preempted)
  int32_t chunk_budget = 0;     // most tokens it may compute this step
  bool match_prefix = false;    // look the full blocks up in the prefix cache first
  uint64_t fork_from = 0;       // != 0: share this holder's first `fork_blocks` blocks instead
  int32_t fork_blocks = 0;
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
  std::vector<int32_t> blocks;  // the new blocks, appended to the table
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

// Full blocks of a sequence to register in the prefix cache: its computed tokens so far.
struct block_commit {
  uint64_t holder = 0;
  std::vector<int32_t> tokens;
};

}  // namespace troupe
