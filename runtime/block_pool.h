// The KV block pool: which of the `num_blocks` KV blocks are free, leased (and by which holder, with
// reference counts), or cached for prefix reuse (reference count 0, keyed by a chained token hash,
// evicted least-recently-used and deepest-first). Pure bookkeeping: no device memory, no CAF. The
// block-manager actor owns one; the scheduler talks to it through leases.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "config/error.h"
#include "runtime/id_list.h"

namespace troupe {

using block_hash = uint64_t;
using holder_id = uint64_t;  // opaque: a sequence or another lease owner

// Hash of one full block given its parent's hash (0 for the first block) and its tokens
// [block_seq_len]. Injectable so tests can force collisions.
using block_hash_fn = std::function<block_hash(block_hash parent, std::span<const int32_t> tokens)>;

// The default chained 64-bit hash (splitmix-style mixing of the parent hash and each token id).
block_hash default_block_hash(block_hash parent, std::span<const int32_t> tokens);

struct block_pool_options {
  int32_t num_blocks = 0;
  int32_t block_seq_len = 64;  // tokens per block
  bool enable_prefix_caching = true;
  block_hash_fn hash;  // empty = default_block_hash
};

struct block_pool_usage {
  int64_t num_total = 0;
  int64_t num_used = 0;    // reference count > 0
  int64_t num_cached = 0;  // reference count 0 and hashed: reusable by a prefix hit, else evictable
  int64_t num_free = 0;    // reference count 0, no hash
  int64_t prefix_queries = 0;  // tokens looked up by match_prefix
  int64_t prefix_hits = 0;     // tokens found
  int64_t num_evictions = 0;   // cached blocks dropped to satisfy a lease
};

struct prefix_match {
  std::vector<int32_t> block_ids;  // [num_tokens / block_seq_len] leased to the holder, in order
  int32_t num_tokens = 0;          // tokens covered by those blocks (a multiple of block_seq_len)
};

// Design note: mirrors vLLM v1's block_pool + kv_cache_manager. A block is in exactly one state:
//   used   (ref_count > 0): referenced by one or more holders (fork shares blocks between holders);
//   cached (ref_count == 0, hashed): in the LRU list and in the hash table, revivable by a prefix hit;
//   free   (ref_count == 0, not hashed): in the free list.
// A lease takes free blocks first and evicts cached ones from the LRU head only when the free list is
// empty. release() appends a holder's hashed blocks to the LRU tail in reverse order, so the deepest
// block of a chain is evicted first. Hash hits are confirmed exactly: a cached block stores its tokens
// and the registration id of its parent block (ids are never reused), so a 64-bit collision can never
// return another prefix's KV.
//
// Mutation contract: every method that changes state is listed under "mutations"; a failed call (a
// refusal or a misuse error) changes nothing. Running out of blocks is a normal std::nullopt; misuse by
// the caller (fork into a holder that holds blocks, committing a block out of order, ...) is an
// errc::internal error; broken internal invariants are caught by check_invariants() in tests.
// Not thread-safe: the owning actor serializes access.
class block_pool {
 public:
  explicit block_pool(block_pool_options opts);

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_seq_len() const { return block_seq_len_; }
  // Blocks needed to hold `num_tokens` tokens.
  int32_t blocks_for_tokens(int64_t num_tokens) const;
  // Blocks a lease could get right now: free + cached (evictable).
  int32_t num_available() const;

  // --- mutations ---

  // Appends `n` blocks to `holder`'s block table (creating the holder if new) and returns their ids,
  // or std::nullopt when fewer than n blocks are free or evictable (nothing changes then). n <= 0
  // grants an empty list.
  std::optional<std::vector<int32_t>> lease(holder_id holder, int32_t n);
  // Moves `ids` (each held by `from`, which holds them once) to the end of `to`'s block table, in
  // order, reference counts unchanged: a scheduler's reservoir of pre-leased blocks handing blocks
  // to its sequences. errc::internal when `from` does not hold them all (nothing changes then).
  status transfer(holder_id from, holder_id to, std::span<const int32_t> ids);
  // The same for a holder that already has blocks (a sequence growing during decode).
  std::optional<std::vector<int32_t>> extend(holder_id holder, int32_t n) { return lease(holder, n); }
  // extend() appending the new ids to `out` instead of a vector of its own (a decode step's one
  // block stays inline): false, and nothing changes, when fewer than n blocks are available.
  bool extend_into(holder_id holder, int32_t n, id_list& out);

  // Sizes `holder`'s block table (and its prefix-cache chain) for up to `num_blocks` blocks, so
  // that growing it block by block in decode allocates nothing. A capacity hint: holds nothing.
  void reserve(holder_id holder, int32_t num_blocks);

  // Returns every block of `holder` (ref_count--). Blocks that reach 0 become cached if hashed (LRU
  // tail, deepest first) and free otherwise. Unknown holders are a no-op. Returns blocks dropped.
  int32_t release(holder_id holder);
  // release() for each holder (an owner actor went down, a request with n choices was cancelled).
  int32_t release_all_of_holders(std::span<const holder_id> holders);

  // Leases to a new `holder` the longest cached prefix of FULL blocks of `tokens`, never the whole
  // prompt: at least one token is left to compute, so the last token's logits get computed. Hit
  // blocks get ref_count++ (a cached one leaves the LRU). The holder must hold no blocks yet.
  result<prefix_match> match_prefix(holder_id holder, std::span<const int32_t> tokens);

  // Registers block `block_index` of `holder`'s table, now full with `block_tokens`
  // [block_seq_len], in the prefix cache. Blocks are committed in order (index == the number already
  // committed; re-committing an earlier index is a no-op). If an identical block is already cached,
  // the holder's block stays unhashed and the chain continues through the cached one.
  status commit_full_block(holder_id holder, int32_t block_index, std::span<const int32_t> block_tokens);
  // Commits every block of `holder` fully covered by `seq_tokens` (all computed tokens of the
  // sequence, prompt then output), skipping those already committed.
  status commit_full_blocks(holder_id holder, std::span<const int32_t> seq_tokens);
  // Commits blocks first_block, first_block + 1, ... of `holder`, full with `block_tokens` (whole
  // blocks, in order; a partial tail is ignored), skipping those already committed: a scheduler
  // sends only the blocks that filled since its last commit. first_block past the committed
  // blocks is an errc::internal error (the chain would have a gap).
  status commit_blocks(holder_id holder, int32_t first_block, std::span<const int32_t> block_tokens);

  // Makes `dst` (which must hold nothing) share the first `num_blocks` blocks of `src` (ref_count++),
  // for n > 1 choices over one prompt. The caller shares only blocks neither will write again (full
  // blocks), or copies the last partial block itself.
  status fork(holder_id src, holder_id dst, int32_t num_blocks);

  // Drops every cached (ref_count 0) block from the prefix cache into the free list.
  void reset_prefix_cache();

  // --- queries ---

  // `holder`'s block table in sequence order (empty for unknown holders).
  std::span<const int32_t> blocks_of(holder_id holder) const;
  int32_t ref_count(int32_t block_id) const;
  bool is_cached(int32_t block_id) const;  // hashed (used or not)
  size_t num_holders() const { return holders_.size(); }
  block_pool_usage usage() const;
  // Cached (ref_count 0) blocks from the next to be evicted to the last.
  std::vector<int32_t> eviction_order() const;

  // Recomputes every count from scratch; errc::internal naming the first broken invariant.
  status check_invariants() const;

 private:
  struct block_meta {
    int32_t ref_count = 0;
    uint64_t reg_id = 0;         // != 0: registered in the hash table under `hash`
    uint64_t parent_reg_id = 0;  // registration of the block before it (0: first block)
    block_hash hash = 0;
    int32_t hash_next = -1;       // the next registered block in its hash bucket's chain
    int32_t lru_prev = -1, lru_next = -1;
    bool in_lru = false;
  };
  struct holder_state {
    std::vector<int32_t> blocks;         // block table, sequence order
    std::vector<block_hash> chain_hash;  // [num committed] chained hash of each committed block
    std::vector<uint64_t> chain_reg;     // [num committed] registration id standing for that block
  };

  int32_t take_block();  // pops a free block or evicts the LRU head; requires num_available() > 0
  void evict(int32_t id);
  void unref(int32_t id);
  void lru_push_back(int32_t id);
  void lru_remove(int32_t id);
  // A registered block with these tokens after parent registration `parent_reg`, or -1.
  int32_t find_cached(block_hash hash, uint64_t parent_reg, std::span<const int32_t> tokens) const;
  // The hash table: registering or dropping a block allocates nothing (chains through block_meta).
  void table_insert(int32_t id);
  void table_erase(int32_t id);
  size_t bucket_of(block_hash hash) const { return static_cast<size_t>(hash) & (buckets_.size() - 1); }
  // A registered block's tokens, for exact comparison.
  std::span<const int32_t> tokens_of(int32_t id) const {
    return {tokens_.data() + static_cast<size_t>(id) * static_cast<size_t>(block_seq_len_),
            static_cast<size_t>(block_seq_len_)};
  }

  int32_t num_blocks_;
  int32_t block_seq_len_;
  bool caching_;
  block_hash_fn hash_;
  std::vector<block_meta> blocks_;             // [num_blocks]
  std::vector<int32_t> free_list_;             // stack of free block ids
  int32_t lru_head_ = -1, lru_tail_ = -1;      // cached blocks, head = next to evict
  int32_t num_lru_ = 0;
  // Design note: the prefix cache's storage is sized once, when the pool is made, so committing a
  // block in steady decode allocates nothing: every block's tokens have their slot, and the hash
  // table is intrusive (a power-of-two array of chain heads).
  std::vector<int32_t> tokens_;    // [num_blocks, block_seq_len] when caching: registered blocks' tokens
  std::vector<int32_t> buckets_;   // [power of two >= num_blocks] first block of each chain, -1: none
  size_t num_registered_ = 0;
  std::unordered_map<holder_id, holder_state> holders_;
  uint64_t next_reg_id_ = 1;
  int64_t prefix_queries_ = 0, prefix_hits_ = 0, num_evictions_ = 0;
};

}  // namespace troupe
