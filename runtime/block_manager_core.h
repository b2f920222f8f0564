// Applies the scheduler's per-step block request to a block_pool: extends first (running
// sequences), then starts (prefix match or fork, then a lease for the step's chunk). Each item is
// all-or-nothing; a refusal is a normal answer. Pure C++: the block-manager actor and tests share it.
#pragma once

#include "runtime/block_messages.h"
#include "runtime/block_pool.h"

namespace troupe {

block_reply apply_block_request(block_pool& pool, const block_request& req);

// Leases up to `n` blocks (as many as are available) to a scheduler's reservoir `holder`.
block_grant apply_block_reserve(block_pool& pool, uint64_t holder, int32_t n);

// Moves each assigned block from the reservoir to its sequence (see block_assignments). A grant
// whose blocks the reservoir no longer holds (released meanwhile) is skipped.
void apply_block_assignments(block_pool& pool, const block_assignments& a);

// Registers the full blocks of each commit in the prefix cache (unknown holders are ignored).
void apply_block_commits(block_pool& pool, const block_commit_batch& commits);

}  // namespace troupe
