// The KV block pool's bookkeeping: free list, reference counts, holder block tables, the prefix-hash
// table with exact confirmation, and the LRU list of cached blocks (see block_pool.h).
#include "runtime/block_pool.h"

#include <algorithm>
#include <cassert>
#include <string>
#include <utility>

namespace troupe {

namespace {

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

error internal(std::string msg) { return make_error(errc::internal, "block_pool: " + std::move(msg)); }

}  // namespace

block_hash default_block_hash(block_hash parent, std::span<const int32_t> tokens) {
  uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ULL);
  for (int32_t t : tokens) h = mix64(h + 0x9e3779b97f4a7c15ULL + static_cast<uint32_t>(t));
  return mix64(h ^ tokens.size());
}

block_pool::block_pool(block_pool_options opts)
    : num_blocks_(std::max(opts.num_blocks, 0)),
      block_seq_len_(std::max(opts.block_seq_len, 1)),
      caching_(opts.enable_prefix_caching),
      hash_(opts.hash ? std::move(opts.hash) : block_hash_fn(default_block_hash)),
      blocks_(static_cast<size_t>(num_blocks_)) {
  if (caching_) {
    tokens_.resize(static_cast<size_t>(num_blocks_) * static_cast<size_t>(block_seq_len_));
    size_t n = 1;
    while (n < static_cast<size_t>(num_blocks_)) n *= 2;
    buckets_.assign(n, -1);
  }
  free_list_.reserve(blocks_.size());
  // A stack popped from the back: hand out low ids first (easier to read in logs and tests).
  for (int32_t id = num_blocks_ - 1; id >= 0; --id) free_list_.push_back(id);
}

int32_t block_pool::blocks_for_tokens(int64_t num_tokens) const {
  if (num_tokens <= 0) return 0;
  return static_cast<int32_t>((num_tokens + block_seq_len_ - 1) / block_seq_len_);
}

int32_t block_pool::num_available() const {
  return static_cast<int32_t>(free_list_.size()) + num_lru_;
}

// --- LRU list (intrusive, doubly linked through block_meta) ---

void block_pool::lru_push_back(int32_t id) {
  block_meta& b = blocks_[id];
  assert(!b.in_lru);
  b.lru_prev = lru_tail_;
  b.lru_next = -1;
  if (lru_tail_ >= 0) blocks_[lru_tail_].lru_next = id; else lru_head_ = id;
  lru_tail_ = id;
  b.in_lru = true;
  ++num_lru_;
}

void block_pool::lru_remove(int32_t id) {
  block_meta& b = blocks_[id];
  assert(b.in_lru);
  if (b.lru_prev >= 0) blocks_[b.lru_prev].lru_next = b.lru_next; else lru_head_ = b.lru_next;
  if (b.lru_next >= 0) blocks_[b.lru_next].lru_prev = b.lru_prev; else lru_tail_ = b.lru_prev;
  b.lru_prev = b.lru_next = -1;
  b.in_lru = false;
  --num_lru_;
}

// Drops a block's registration (it must not be referenced). It does not go to the free list.
void block_pool::evict(int32_t id) {
  block_meta& b = blocks_[id];
  assert(b.ref_count == 0);
  if (b.in_lru) lru_remove(id);
  if (b.reg_id != 0) table_erase(id);
  b.reg_id = 0;
  b.parent_reg_id = 0;
  b.hash = 0;
}

void block_pool::table_insert(int32_t id) {
  int32_t& head = buckets_[bucket_of(blocks_[id].hash)];
  blocks_[id].hash_next = head;
  head = id;
  ++num_registered_;
}

void block_pool::table_erase(int32_t id) {
  int32_t* link = &buckets_[bucket_of(blocks_[id].hash)];
  while (*link >= 0 && *link != id) link = &blocks_[*link].hash_next;
  if (*link != id) return;
  *link = blocks_[id].hash_next;
  blocks_[id].hash_next = -1;
  --num_registered_;
}

int32_t block_pool::take_block() {
  int32_t id = -1;
  if (!free_list_.empty()) {
    id = free_list_.back();
    free_list_.pop_back();
  } else {
    assert(lru_head_ >= 0);
    id = lru_head_;
    evict(id);
    ++num_evictions_;
  }
  assert(blocks_[id].ref_count == 0 && blocks_[id].reg_id == 0);
  blocks_[id].ref_count = 1;
  return id;
}

void block_pool::unref(int32_t id) {
  block_meta& b = blocks_[id];
  assert(b.ref_count > 0);
  if (--b.ref_count > 0) return;
  if (b.reg_id != 0) lru_push_back(id); else free_list_.push_back(id);
}

// --- leases ---

std::optional<std::vector<int32_t>> block_pool::lease(holder_id holder, int32_t n) {
  if (n <= 0) return std::vector<int32_t>{};
  if (n > num_available()) return std::nullopt;  // a normal refusal: the scheduler preempts or waits
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) ids.push_back(take_block());
  auto& blocks = holders_[holder].blocks;
  blocks.insert(blocks.end(), ids.begin(), ids.end());
  return ids;
}

bool block_pool::extend_into(holder_id holder, int32_t n, id_list& out) {
  if (n <= 0) return true;
  if (n > num_available()) return false;
  auto& blocks = holders_[holder].blocks;
  for (int32_t i = 0; i < n; ++i) {
    const int32_t id = take_block();
    blocks.push_back(id);
    out.push_back(id);
  }
  return true;
}

status block_pool::transfer(holder_id from, holder_id to, std::span<const int32_t> ids) {
  if (ids.empty()) return ok_status();
  auto src = holders_.find(from);
  if (src == holders_.end() || from == to)
    return make_error(errc::internal, "block transfer from a holder that holds nothing");
  auto& blocks = src->second.blocks;
  // Reservoir blocks are never committed: the source's chain stays empty, so removing any is safe.
  if (!src->second.chain_hash.empty()) return make_error(errc::internal, "block transfer from a committed holder");
  if (ids.size() <= blocks.size() && std::equal(ids.begin(), ids.end(), blocks.begin())) {
    // The common case: a reservoir hands out its blocks in lease order, from the front.
    blocks.erase(blocks.begin(), blocks.begin() + static_cast<std::ptrdiff_t>(ids.size()));
    if (blocks.empty()) holders_.erase(src);
    auto& dst = holders_[to].blocks;
    dst.insert(dst.end(), ids.begin(), ids.end());
    return ok_status();
  }
  std::vector<int32_t> wanted(ids.begin(), ids.end());
  std::sort(wanted.begin(), wanted.end());
  std::vector<int32_t> rest;
  rest.reserve(blocks.size());
  size_t found = 0;
  for (int32_t b : blocks) {
    if (std::binary_search(wanted.begin(), wanted.end(), b)) ++found;
    else rest.push_back(b);
  }
  if (found != ids.size()) return make_error(errc::internal, "block transfer of a block the holder does not hold");
  if (rest.empty()) holders_.erase(src);
  else blocks = std::move(rest);
  auto& dst = holders_[to].blocks;
  dst.insert(dst.end(), ids.begin(), ids.end());
  return ok_status();
}

void block_pool::reserve(holder_id holder, int32_t num_blocks) {
  auto it = holders_.find(holder);
  if (it == holders_.end() || num_blocks <= 0) return;  // only a holder that holds blocks keeps a table
  const auto n = static_cast<size_t>(std::min(num_blocks, num_blocks_));
  it->second.blocks.reserve(n);
  if (caching_) {
    it->second.chain_hash.reserve(n);
    it->second.chain_reg.reserve(n);
  }
}

int32_t block_pool::release(holder_id holder) {
  auto it = holders_.find(holder);
  if (it == holders_.end()) return 0;
  const auto& blocks = it->second.blocks;
  // Tail first: the deepest block of the chain enters the LRU first and so is evicted first.
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) unref(*b);
  auto n = static_cast<int32_t>(blocks.size());
  holders_.erase(it);
  return n;
}

int32_t block_pool::release_all_of_holders(std::span<const holder_id> holders) {
  int32_t n = 0;
  for (holder_id h : holders) n += release(h);
  return n;
}

status block_pool::fork(holder_id src, holder_id dst, int32_t num_blocks) {
  if (src == dst) return internal("fork of a holder into itself");
  auto s = holders_.find(src);
  if (s == holders_.end()) return internal("fork from unknown holder " + std::to_string(src));
  if (num_blocks < 0 || num_blocks > static_cast<int32_t>(s->second.blocks.size())) {
    return internal("fork of " + std::to_string(num_blocks) + " blocks from a holder of " +
                    std::to_string(s->second.blocks.size()));
  }
  auto d = holders_.find(dst);
  if (d != holders_.end() && !d->second.blocks.empty()) {
    return internal("fork into holder " + std::to_string(dst) + " that already holds blocks");
  }
  if (num_blocks == 0) return ok_status();
  const holder_state& from = s->second;  // copy before inserting: holders_ may rehash
  holder_state to;
  to.blocks.assign(from.blocks.begin(), from.blocks.begin() + num_blocks);
  size_t committed = std::min(from.chain_hash.size(), static_cast<size_t>(num_blocks));
  to.chain_hash.assign(from.chain_hash.begin(), from.chain_hash.begin() + committed);
  to.chain_reg.assign(from.chain_reg.begin(), from.chain_reg.begin() + committed);
  for (int32_t id : to.blocks) ++blocks_[id].ref_count;
  holders_[dst] = std::move(to);
  return ok_status();
}

// --- prefix cache ---

int32_t block_pool::find_cached(block_hash hash, uint64_t parent_reg,
                                std::span<const int32_t> tokens) const {
  if (buckets_.empty()) return -1;
  for (int32_t id = buckets_[bucket_of(hash)]; id >= 0; id = blocks_[id].hash_next) {
    const block_meta& b = blocks_[id];
    // Exact confirmation: same parent registration and same tokens, whatever the hash says.
    if (b.hash == hash && b.parent_reg_id == parent_reg) {
      const auto mine = tokens_of(id);
      if (std::equal(mine.begin(), mine.end(), tokens.begin(), tokens.end())) return id;
    }
  }
  return -1;
}

result<prefix_match> block_pool::match_prefix(holder_id holder, std::span<const int32_t> tokens) {
  auto h = holders_.find(holder);
  if (h != holders_.end() && !h->second.blocks.empty()) {
    return internal("match_prefix for holder " + std::to_string(holder) + " that already holds blocks");
  }
  prefix_queries_ += static_cast<int64_t>(tokens.size());
  prefix_match out;
  if (!caching_ || tokens.empty()) return out;
  // Never the whole prompt: the last token must be computed to get its logits.
  const size_t max_blocks = (tokens.size() - 1) / static_cast<size_t>(block_seq_len_);
  holder_state state;
  block_hash parent_hash = 0;
  uint64_t parent_reg = 0;
  for (size_t i = 0; i < max_blocks; ++i) {
    auto blk = tokens.subspan(i * block_seq_len_, static_cast<size_t>(block_seq_len_));
    block_hash hash = hash_(parent_hash, blk);
    int32_t id = find_cached(hash, parent_reg, blk);
    if (id < 0) break;
    state.blocks.push_back(id);
    state.chain_hash.push_back(hash);
    state.chain_reg.push_back(blocks_[id].reg_id);
    parent_hash = hash;
    parent_reg = blocks_[id].reg_id;
  }
  if (state.blocks.empty()) return out;
  for (int32_t id : state.blocks) {
    if (blocks_[id].ref_count == 0) lru_remove(id);  // revived: no longer evictable
    ++blocks_[id].ref_count;
  }
  out.block_ids = state.blocks;
  out.num_tokens = static_cast<int32_t>(state.blocks.size()) * block_seq_len_;
  prefix_hits_ += out.num_tokens;
  holders_[holder] = std::move(state);
  return out;
}

status block_pool::commit_full_block(holder_id holder, int32_t block_index,
                                     std::span<const int32_t> block_tokens) {
  if (!caching_) return ok_status();
  auto h = holders_.find(holder);
  if (h == holders_.end()) return internal("commit for unknown holder " + std::to_string(holder));
  holder_state& st = h->second;
  const auto committed = static_cast<int32_t>(st.chain_hash.size());
  if (block_index < 0 || block_index >= static_cast<int32_t>(st.blocks.size())) {
    return internal("commit of block " + std::to_string(block_index) + " of a holder of " +
                    std::to_string(st.blocks.size()));
  }
  if (block_index < committed) return ok_status();  // already committed
  if (block_index > committed) {
    return internal("commit of block " + std::to_string(block_index) + " before block " +
                    std::to_string(committed));
  }
  if (static_cast<int32_t>(block_tokens.size()) != block_seq_len_) {
    return internal("commit of a block with " + std::to_string(block_tokens.size()) + " tokens");
  }
  const block_hash parent_hash = committed > 0 ? st.chain_hash.back() : 0;
  const uint64_t parent_reg = committed > 0 ? st.chain_reg.back() : 0;
  const block_hash hash = hash_(parent_hash, block_tokens);
  const int32_t id = st.blocks[static_cast<size_t>(block_index)];
  block_meta& b = blocks_[id];
  uint64_t reg = 0;
  if (b.reg_id != 0) {
    // Already registered through another holder sharing it (fork): it must hold the same tokens.
    if (b.parent_reg_id != parent_reg ||
        !std::equal(tokens_of(id).begin(), tokens_of(id).end(), block_tokens.begin(), block_tokens.end())) {
      return internal("shared block " + std::to_string(id) + " committed with different tokens");
    }
    reg = b.reg_id;
  } else if (int32_t dup = find_cached(hash, parent_reg, block_tokens); dup >= 0) {
    reg = blocks_[dup].reg_id;  // an identical block is cached: keep one copy, chain through it
  } else {
    reg = next_reg_id_++;
    b.reg_id = reg;
    b.parent_reg_id = parent_reg;
    b.hash = hash;
    std::copy(block_tokens.begin(), block_tokens.end(), tokens_.begin() + static_cast<std::ptrdiff_t>(id) * block_seq_len_);
    table_insert(id);
  }
  st.chain_hash.push_back(hash);
  st.chain_reg.push_back(reg);
  return ok_status();
}

status block_pool::commit_full_blocks(holder_id holder, std::span<const int32_t> seq_tokens) {
  if (!caching_) return ok_status();
  auto h = holders_.find(holder);
  if (h == holders_.end()) return internal("commit for unknown holder " + std::to_string(holder));
  const size_t full = std::min(seq_tokens.size() / static_cast<size_t>(block_seq_len_),
                               h->second.blocks.size());
  for (size_t i = h->second.chain_hash.size(); i < full; ++i) {
    auto blk = seq_tokens.subspan(i * block_seq_len_, static_cast<size_t>(block_seq_len_));
    TROUPE_TRY(commit_full_block(holder, static_cast<int32_t>(i), blk));
  }
  return ok_status();
}

status block_pool::commit_blocks(holder_id holder, int32_t first_block, std::span<const int32_t> block_tokens) {
  if (!caching_) return ok_status();
  auto h = holders_.find(holder);
  if (h == holders_.end()) return internal("commit for unknown holder " + std::to_string(holder));
  const auto committed = static_cast<int32_t>(h->second.chain_hash.size());
  if (first_block < 0 || first_block > committed) {
    return internal("commit from block " + std::to_string(first_block) + " after " + std::to_string(committed) +
                    " committed blocks");
  }
  const auto n = static_cast<int32_t>(block_tokens.size() / static_cast<size_t>(block_seq_len_));
  const int32_t end = std::min(first_block + n, static_cast<int32_t>(h->second.blocks.size()));
  for (int32_t i = committed; i < end; ++i) {
    auto blk = block_tokens.subspan(static_cast<size_t>(i - first_block) * block_seq_len_,
                                    static_cast<size_t>(block_seq_len_));
    TROUPE_TRY(commit_full_block(holder, i, blk));
  }
  return ok_status();
}

void block_pool::reset_prefix_cache() {
  while (lru_head_ >= 0) {
    int32_t id = lru_head_;
    evict(id);
    free_list_.push_back(id);
  }
}

// --- queries ---

std::span<const int32_t> block_pool::blocks_of(holder_id holder) const {
  auto it = holders_.find(holder);
  if (it == holders_.end()) return {};
  return it->second.blocks;
}

int32_t block_pool::ref_count(int32_t block_id) const {
  if (block_id < 0 || block_id >= num_blocks_) return 0;
  return blocks_[block_id].ref_count;
}

bool block_pool::is_cached(int32_t block_id) const {
  return block_id >= 0 && block_id < num_blocks_ && blocks_[block_id].reg_id != 0;
}

block_pool_usage block_pool::usage() const {
  block_pool_usage u;
  u.num_total = num_blocks_;
  u.num_free = static_cast<int64_t>(free_list_.size());
  u.num_cached = num_lru_;
  u.num_used = u.num_total - u.num_free - u.num_cached;
  u.prefix_queries = prefix_queries_;
  u.prefix_hits = prefix_hits_;
  u.num_evictions = num_evictions_;
  return u;
}

std::vector<int32_t> block_pool::eviction_order() const {
  std::vector<int32_t> out;
  for (int32_t id = lru_head_; id >= 0; id = blocks_[id].lru_next) out.push_back(id);
  return out;
}

status block_pool::check_invariants() const {
  auto fail = [](const std::string& what) { return status(internal("invariant: " + what)); };
  std::vector<int32_t> refs(blocks_.size(), 0);
  for (const auto& [h, st] : holders_) {
    if (st.chain_hash.size() != st.chain_reg.size() || st.chain_hash.size() > st.blocks.size()) {
      return fail("holder " + std::to_string(h) + " chain longer than its table");
    }
    for (int32_t id : st.blocks) {
      if (id < 0 || id >= num_blocks_) return fail("holder holds bad id " + std::to_string(id));
      ++refs[id];
    }
  }
  std::vector<uint8_t> in_free(blocks_.size(), 0);
  for (int32_t id : free_list_) {
    if (id < 0 || id >= num_blocks_ || in_free[id]) return fail("free list duplicate or bad id");
    in_free[id] = 1;
  }
  int32_t lru_count = 0, prev = -1;
  for (int32_t id = lru_head_; id >= 0; id = blocks_[id].lru_next) {
    if (blocks_[id].lru_prev != prev || !blocks_[id].in_lru || ++lru_count > num_blocks_) {
      return fail("LRU links broken at block " + std::to_string(id));
    }
    prev = id;
  }
  if (prev != lru_tail_ || lru_count != num_lru_) return fail("LRU tail or count mismatch");
  int64_t used = 0, cached = 0, free = 0;
  for (int32_t id = 0; id < num_blocks_; ++id) {
    const block_meta& b = blocks_[id];
    if (b.ref_count != refs[id]) {
      return fail("block " + std::to_string(id) + " ref_count " + std::to_string(b.ref_count) +
                  " != " + std::to_string(refs[id]) + " holder references");
    }
    if (b.ref_count > 0) {
      if (b.in_lru || in_free[id]) return fail("used block " + std::to_string(id) + " listed as idle");
      ++used;
    } else if (b.reg_id != 0) {
      if (!b.in_lru || in_free[id]) return fail("cached block " + std::to_string(id) + " not in LRU");
      ++cached;
    } else {
      if (b.in_lru || !in_free[id]) return fail("free block " + std::to_string(id) + " not in free list");
      ++free;
    }
    if (b.reg_id != 0 && !caching_) return fail("registered block " + std::to_string(id) + " without a cache");
  }
  size_t registered = 0, chained = 0;
  for (const auto& b : blocks_) registered += b.reg_id != 0;
  if (registered != num_registered_) return fail("hash table size != registered blocks");
  for (size_t k = 0; k < buckets_.size(); ++k)
    for (int32_t id = buckets_[k]; id >= 0; id = blocks_[id].hash_next) {
      if (blocks_[id].reg_id == 0 || bucket_of(blocks_[id].hash) != k) return fail("stale hash table entry");
      if (++chained > registered) return fail("a hash chain loops");
    }
  if (chained != registered) return fail("registered blocks missing from the hash table");
  if (used + cached + free != num_blocks_) return fail("used + cached + free != total");
  const block_pool_usage u = usage();
  if (u.num_used != used || u.num_cached != cached || u.num_free != free) return fail("usage counts");
  return ok_status();
}

}  // namespace troupe
