// The scheduling core's block side (see scheduler_core.h): planning a step's blocks, applying the
// block manager's (or the reservoir's) grants into the step batch, commits of newly full blocks to
// the prefix cache, releases and preemption. Steady decode allocates nothing per sequence here.
#include <algorithm>
#include <cassert>

#include "runtime/scheduler_core.h"
#include "runtime/scheduler_core_state.h"

namespace troupe {

// The token in flight ends the sequence whatever it is (max_tokens or session_len): async scheduling
// leaves it out of the next step.
bool scheduler_core::ends_by_length_after_pending(const sequence& s) const {
  const int64_t len = static_cast<int64_t>(s.tokens.size()) + s.inflight_samples;
  return s.num_generated + s.inflight_samples >= s.req->req.params.max_tokens ||
         (limits_.session_len > 0 && len >= limits_.session_len);
}

std::optional<block_request> scheduler_core::plan_step(int64_t available, bool ahead) {
  assert(!planning_);
  if (ahead ? num_flight_ != 1 || delta_.reset_pending() : num_flight_ != 0) return std::nullopt;
  const int32_t bs = limits_.block_seq_len;
  block_request br;
  int32_t batch = 0;
  int32_t prefill_budget = limits_.max_prefill_tokens;
  step_record& p = plan_;
  p.clear();

  // 1. Running sequences, oldest first; preempt the newest when their next blocks do not fit.
  for (size_t i = 0; i < running_.size() && batch < limits_.max_batch_size; ++i) {
    sequence* s = running_[i];
    // What the steps in flight compute is taken as done; a token they sample is known to come.
    const int32_t scheduled = s->num_computed + s->inflight_tokens;
    const int32_t remaining = static_cast<int32_t>(s->tokens.size()) + s->inflight_samples - scheduled;
    const int32_t chunk = remaining <= 1 ? remaining : std::min(remaining, prefill_budget);
    if (chunk <= 0) continue;
    if (s->inflight_samples > 0 && ends_by_length_after_pending(*s)) continue;
    int32_t need = blocks_for(scheduled + chunk, bs) - static_cast<int32_t>(s->blocks.size());
    if (ahead && need > available) {  // no preemption with a step in flight: plan when it answers
      p.clear();
      return std::nullopt;
    }
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
    p.extend.push_back(need > 0 ? static_cast<int32_t>(br.extends.size()) : -1);
    if (need > 0) {
      if (br.extends.empty()) br.extends.reserve(running_.size() - i);  // one allocation, not log2(B)
      br.extends.push_back({s->id, need});
    }
    if (chunk > 1) prefill_budget -= chunk;
    p.seqs.push_back(s);
    p.chunk.push_back(chunk);
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
  if (p.seqs.empty() && br.starts.empty()) return std::nullopt;
  planning_ = true;
  return br;
}

step_batch scheduler_core::apply_blocks(const block_reply& reply) {
  const int32_t bs = limits_.block_seq_len;
  planning_ = false;
  // The new step's record: the ring's next slot (reused: no allocation in steady decode).
  assert(num_flight_ < 2);
  step_record& rec = flight_[(flight_head_ + num_flight_) % 2];
  rec.clear();
  // Running sequences whose extension was refused sit this step out.
  for (size_t i = 0; i < plan_.seqs.size(); ++i) {
    sequence* s = plan_.seqs[i];
    if (!s) continue;  // its request ended while the blocks were asked for
    bool ok = true;
    // Extends come back in request order: the plan's index finds each in O(1).
    const block_extend_reply* e = nullptr;
    if (const int32_t k = plan_.extend[i]; k >= 0) {
      if (static_cast<size_t>(k) < reply.extends.size() && reply.extends[static_cast<size_t>(k)].holder == s->id) {
        e = &reply.extends[static_cast<size_t>(k)];
      } else {
        for (const auto& x : reply.extends)  // a reply in another order: search
          if (x.holder == s->id) e = &x;
      }
    }
    // A choice that ended while the blocks were asked for (async scheduling) has released them all.
    if (s->ph != sequence::phase::running) continue;
    if (e) {
      ok = e->ok;
      if (ok) s->blocks.insert(s->blocks.end(), e->blocks.begin(), e->blocks.end());
    }
    if (!ok) continue;
    rec.seqs.push_back(s);
    rec.chunk.push_back(plan_.chunk[i]);
  }
  plan_.clear();
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
    rec.seqs.push_back(s);
    rec.chunk.push_back(chunk);
  }
  step_batch batch;
  batch.seqs.reserve(rec.seqs.size());
  rec.samples.resize(rec.seqs.size());
  for (size_t i = 0; i < rec.seqs.size(); ++i) {
    sequence* s = rec.seqs[i];
    const int32_t chunk = rec.chunk[i];
    const int32_t from = s->num_computed + s->inflight_tokens;  // after what the step in flight computes
    const auto known = static_cast<int32_t>(s->tokens.size());
    seq_step& ss = batch.seqs.emplace_back();
    ss.seq_id = static_cast<int64_t>(s->id);
    ss.start_pos = from;
    if (from >= known) {  // the token the step in flight samples: the executor feeds it
      assert(chunk == 1 && s->inflight_samples > 0);
      ss.tokens.assign(size_t{1}, 0);
      ss.feed_sampled = true;
    } else {
      ss.tokens.assign(s->tokens.begin() + from, s->tokens.begin() + from + chunk);
    }
    delta_.fill(s->sent, s->blocks, ss);
    // Scoring-only requests (max_tokens 0) sample nothing: no row, no sampler.
    ss.want_logits = from + chunk == known + s->inflight_samples && s->req->req.params.max_tokens > 0;
    if (ss.want_logits) ss.sampling = s->smp;  // the executor samples it (see step_batch.h)
    if (scores_prompt(*s) && from < s->num_prompt) {
      const int32_t end = from + chunk;
      ss.prompt_logprobs = s->req->req.params.prompt_logprobs;
      ss.next_token = end < s->num_prompt ? s->tokens[static_cast<size_t>(end)] : -1;
    }
    assert(static_cast<int64_t>(s->blocks.size()) * bs >= from + chunk);
    s->inflight_tokens += chunk;
    rec.samples[i] = ss.want_logits ? 1 : 0;
    if (ss.want_logits) ++s->inflight_samples;
  }
  if (!batch.seqs.empty()) {
    delta_.seal(batch);  // an empty batch is not sent: removals wait for the next
    ++num_flight_;
  }
  return batch;
}

bool scheduler_core::oldest_step_is_void() const {
  if (num_flight_ == 0) return false;
  for (const sequence* s : flight_[flight_head_].seqs)
    if (s && s->ph == sequence::phase::running) return false;
  return true;
}

void scheduler_core::pop_flight() {
  step_record& rec = oldest_flight();
  for (size_t i = 0; i < rec.seqs.size(); ++i)
    if (sequence* s = rec.seqs[i]) {
      s->inflight_tokens -= rec.chunk[i];
      s->inflight_samples -= rec.samples[i];
    }
  rec.clear();
  flight_head_ = (flight_head_ + 1) % 2;
  --num_flight_;
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
  assert(s.inflight_tokens == 0);  // only planned with no step in flight
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
