// The scheduling core's block side (see scheduler_core.h): planning a step's blocks, applying the
// block manager's (or the reservoir's) grants into the step batch, commits of newly full blocks to
// the prefix cache, releases and preemption. Steady decode allocates nothing per sequence here.
#include <algorithm>
#include <cassert>

#include "runtime/scheduler_core.h"
#include "runtime/scheduler_core_state.h"

namespace troupe {

std::optional<block_request> scheduler_core::plan_step(int64_t available) {
  assert(in_step_.empty());
  const int32_t bs = limits_.block_seq_len;
  block_request br;
  int32_t batch = 0;
  int32_t prefill_budget = limits_.max_prefill_tokens;
  step_chunk_.clear();
  step_extend_.clear();

  // 1. Running sequences, oldest first; preempt the newest when their next blocks do not fit.
  for (size_t i = 0; i < running_.size() && batch < limits_.max_batch_size; ++i) {
    sequence* s = running_[i];
    const int32_t remaining = static_cast<int32_t>(s->tokens.size()) - s->num_computed;
    const int32_t chunk = remaining <= 1 ? remaining : std::min(remaining, prefill_budget);
    if (chunk <= 0) continue;
    int32_t need = blocks_for(s->num_computed + chunk, bs) - static_cast<int32_t>(s->blocks.size());
    while (need > available && running_.back() != s) {
      sequence* victim = running_.back();
      available += static_cast<int64_t>(victim->blocks.size());
      preempt(*victim);
    }
    if (need > available) {  // s is the newest and still does not fit: it waits (recompute later)
      available += static_cast<int64_t>(s->blocks.size());
      preempt(*s);
      break;
    }
    available -= need;
    step_extend_.push_back(need > 0 ? static_cast<int32_t>(br.extends.size()) : -1);
    if (need > 0) {
      if (br.extends.empty()) br.extends.reserve(running_.size() - i);  // one allocation, not log2(B)
      br.extends.push_back({s->id, need});
    }
    if (chunk > 1) prefill_budget -= chunk;
    in_step_.push_back(s);
    step_chunk_.push_back(chunk);
    ++batch;
  }

  // 2. Sequences waiting for blocks, FIFO, while the batch, the prefill budget and the blocks allow.
  for (sequence* s : to_start_) {
    if (batch >= limits_.max_batch_size || prefill_budget <= 0) break;
    if (s->waits_for_parent) continue;
    const int32_t len = static_cast<int32_t>(s->tokens.size());
    block_start st;
    st.holder = s->id;
    st.tokens = s->tokens;
    st.chunk_budget = std::min(len, prefill_budget);
    st.match_prefix = limits_.prefix_caching && !scores_prompt(*s);  // cached positions are never scored
    st.reserve_blocks = static_cast<int32_t>(s->blocks.capacity());  // sized at add_request
    int32_t need = blocks_for(st.chunk_budget, bs);
    if (s->index > 0 && !s->started_once) {
      sequence* parent = s->req->seqs[0].get();
      if (parent->ph == sequence::phase::running && parent->num_computed >= parent->num_prompt) {
        st.fork_from = parent->id;
        st.fork_blocks = (s->num_prompt - 1) / bs;  // full prompt blocks only; the tail is recomputed
        st.match_prefix = false;
        st.chunk_budget = std::min(len - st.fork_blocks * bs, prefill_budget);
        need = blocks_for(st.fork_blocks * bs + st.chunk_budget, bs) - st.fork_blocks;
      }
    }
    if (need > available) break;
    available -= need;
    prefill_budget -= st.chunk_budget;
    br.starts.push_back(std::move(st));
    ++batch;
  }
  if (in_step_.empty() && br.starts.empty()) return std::nullopt;
  return br;
}

step_batch scheduler_core::apply_blocks(const block_reply& reply) {
  const int32_t bs = limits_.block_seq_len;
  // Running sequences whose extension was refused sit this step out.
  std::vector<sequence*>& planned = planned_;
  std::vector<int32_t>& chunks = planned_chunk_;
  planned.clear();
  chunks.clear();
  for (size_t i = 0; i < in_step_.size(); ++i) {
    sequence* s = in_step_[i];
    if (!s) continue;  // its request ended while the blocks were asked for
    bool ok = true;
    // Extends come back in request order: the plan's index finds each in O(1).
    const block_extend_reply* e = nullptr;
    if (const int32_t k = step_extend_[i]; k >= 0) {
      if (static_cast<size_t>(k) < reply.extends.size() && reply.extends[static_cast<size_t>(k)].holder == s->id) {
        e = &reply.extends[static_cast<size_t>(k)];
      } else {
        for (const auto& x : reply.extends)  // a reply in another order: search
          if (x.holder == s->id) e = &x;
      }
    }
    if (e) {
      ok = e->ok;
      if (ok) s->blocks.insert(s->blocks.end(), e->blocks.begin(), e->blocks.end());
    }
    if (!ok) continue;
    planned.push_back(s);
    chunks.push_back(step_chunk_[i]);
  }
  for (const auto& st : reply.starts) {
    sequence* s = find_seq(st.holder);
    if (st.ok && (!s || s->ph != sequence::phase::waiting)) {
      releases_.push_back(st.holder);  // granted to a sequence that ended meanwhile
      continue;
    }
    if (!s || !st.ok) continue;
    s->blocks = st.blocks;
    s->num_computed = st.num_cached_tokens;
    s->num_committed = st.num_cached_tokens / bs;
    if (!s->started_once && s->index == 0) s->req->usage.cached_prompt_tokens = st.num_cached_tokens;
    s->started_once = true;
    s->ph = sequence::phase::running;
    to_start_.erase(std::find(to_start_.begin(), to_start_.end(), s));
    auto pos = std::upper_bound(running_.begin(), running_.end(), s,
                                [](const sequence* a, const sequence* b) { return a->order < b->order; });
    running_.insert(pos, s);
    const int32_t len = static_cast<int32_t>(s->tokens.size());
    const int32_t capacity = static_cast<int32_t>(s->blocks.size()) * bs;
    const int32_t chunk = std::min(len, capacity) - s->num_computed;
    if (chunk <= 0) continue;
    planned.push_back(s);
    chunks.push_back(chunk);
  }
  in_step_.swap(planned), step_chunk_.swap(chunks);
  step_batch batch;
  batch.seqs.reserve(in_step_.size());
  for (size_t i = 0; i < in_step_.size(); ++i) {
    sequence* s = in_step_[i];
    seq_step& ss = batch.seqs.emplace_back();
    ss.seq_id = static_cast<int64_t>(s->id);
    ss.start_pos = s->num_computed;
    ss.tokens.assign(s->tokens.begin() + s->num_computed, s->tokens.begin() + s->num_computed + step_chunk_[i]);
    delta_.fill(s->sent, s->blocks, ss);
    // Scoring-only requests (max_tokens 0) sample nothing: no row, no sampler.
    ss.want_logits = s->num_computed + step_chunk_[i] == static_cast<int32_t>(s->tokens.size()) &&
                     s->req->req.params.max_tokens > 0;
    if (ss.want_logits) ss.sampling = s->smp;  // the executor samples it (see step_batch.h)
    if (scores_prompt(*s) && s->num_computed < s->num_prompt) {
      const int32_t end = s->num_computed + step_chunk_[i];
      ss.prompt_logprobs = s->req->req.params.prompt_logprobs;
      ss.next_token = end < s->num_prompt ? s->tokens[static_cast<size_t>(end)] : -1;
    }
    assert(static_cast<int64_t>(s->blocks.size()) * bs >= s->num_computed + step_chunk_[i]);
  }
  if (!batch.seqs.empty()) delta_.seal(batch);  // an empty batch is not sent: removals wait for the next
  return batch;
}

// Only the blocks that filled since the last commit travel (O(block_seq_len) per block, not the
// whole prefix): the pool chains them onto the blocks it has committed for this holder, which are
// exactly s.num_committed (prefix hits and forks start the chain where num_committed starts).
void scheduler_core::commit_full_blocks(sequence& s) {
  const int32_t bs = limits_.block_seq_len;
  const int32_t full = s.num_computed / bs;
  if (!limits_.prefix_caching || full <= s.num_committed) return;
  const auto from = static_cast<size_t>(s.num_committed) * static_cast<size_t>(bs);
  commits_.add(s.id, s.num_committed, {s.tokens.data() + from, static_cast<size_t>(full - s.num_committed) * bs});
  s.num_committed = full;
}

void scheduler_core::release_sequence(sequence& s) {
  if (s.ph == sequence::phase::running) {
    running_.erase(std::find(running_.begin(), running_.end(), &s));
    releases_.push_back(s.id);
  } else if (s.ph == sequence::phase::waiting) {
    auto it = std::find(to_start_.begin(), to_start_.end(), &s);
    if (it != to_start_.end()) to_start_.erase(it);
  }
  delta_.forget(s.sent, static_cast<int64_t>(s.id));
  s.blocks.clear();
}

void scheduler_core::preempt(sequence& s) {
  release_sequence(s);  // running: its blocks go back, the executors forget it
  s.num_computed = 0;
  s.num_committed = 0;
  s.ph = sequence::phase::waiting;
  to_start_.push_front(&s);
  ++num_preemptions_;
}


std::vector<uint64_t> scheduler_core::take_releases() { return std::exchange(releases_, {}); }
block_commit_batch scheduler_core::take_commits() {
  block_commit_batch out;
  if (commits_.empty()) return out;
  out.entries.assign(commits_.entries.begin(), commits_.entries.end());
  out.tokens.assign(commits_.tokens.begin(), commits_.tokens.end());
  commits_.clear();
  return out;
}

}  // namespace troupe
