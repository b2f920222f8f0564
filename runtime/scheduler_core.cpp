// The scheduling policy (see scheduler_core.h for the three phases of a step). Sequences are block
// holders: their id is the holder id the block manager knows them by.
#include "runtime/scheduler_core.h"

#include <algorithm>
#include <cassert>

#include "runtime/incremental_decoder.h"
#include "runtime/logprob_aligner.h"
#include "runtime/sampler.h"
#include "runtime/step_sampling.h"
#include "runtime/token_constraint.h"
#include "runtime/tokenizer.h"
#include "runtime/scheduler_core_state.h"

namespace troupe {

scheduler_core::scheduler_core(scheduler_limits limits, std::shared_ptr<const tokenizer> tok,
                               std::vector<int32_t> eos_ids)
    : limits_(limits), tok_(std::move(tok)) {
  stop_rules_.eos_ids = std::move(eos_ids);
  stop_rules_.session_len = limits_.session_len;
}

scheduler_core::~scheduler_core() = default;

uint64_t scheduler_core::add_request(generation_request req, double queue_time_s) {
  auto r = std::make_unique<request_state>();
  r->handle = next_request_++;
  r->queue_time_s = queue_time_s;
  r->req = std::move(req);
  const uint64_t handle = r->handle;
  request_state& rr = *r;
  requests_.emplace(handle, std::move(r));

  const int64_t prompt_len = static_cast<int64_t>(rr.req.prompt_ids.size());
  int64_t longest = prompt_len + rr.req.params.max_tokens;
  if (limits_.session_len > 0) longest = std::min(longest, limits_.session_len);
  if (prompt_len == 0) {
    fail_request(rr, make_error(errc::invalid_argument, "the prompt is empty"));
    return handle;
  }
  if (blocks_for(longest, limits_.block_seq_len) > limits_.num_blocks) {
    fail_request(rr, make_error(errc::context_too_long,
                                "the request needs up to " + std::to_string(longest) + " tokens of KV cache but the "
                                "whole cache holds " + std::to_string(limits_.num_blocks * limits_.block_seq_len) +
                                    "; lower max_tokens or raise the KV cache"));
    return handle;
  }
  std::shared_ptr<const compiled_constraint> constraint = rr.req.compiled;
  if (!rr.req.constraint.empty() && !constraint) {
    if (!compile_) {
      fail_request(rr, make_error(errc::unsupported, "structured outputs are not available on this node"));
      return handle;
    }
    auto c = compile_(rr.req.constraint);
    if (!c.ok()) {
      fail_request(rr, c.err());
      return handle;
    }
    constraint = std::move(c).value();
  }
  rr.usage.prompt_tokens = static_cast<int32_t>(prompt_len);
  prompt_tokens_total_ += prompt_len;
  const int32_t n = std::max(1, rr.req.n);
  for (int32_t i = 0; i < n; ++i) {
    auto s = std::make_unique<sequence>();
    s->id = next_seq_++;
    s->req = &rr;
    s->index = i;
    s->tokens = rr.req.prompt_ids;
    // Room for its whole output (capped): appending a token never reallocates in steady decode.
    s->tokens.reserve(static_cast<size_t>(std::min<int64_t>(longest, prompt_len + 4096)));
    s->blocks.reserve(static_cast<size_t>(blocks_for(static_cast<int64_t>(s->tokens.capacity()), limits_.block_seq_len)));
    s->num_prompt = static_cast<int32_t>(prompt_len);
    s->order = next_order_++;
    s->waits_for_parent = i > 0;
    sampling_params p = rr.req.params;
    if (p.seed && i > 0) p.seed = *p.seed + static_cast<uint64_t>(i);  // distinct but reproducible choices
    s->smp = std::make_shared<sampler>(p, rr.req.prompt_ids, stop_rules_.eos_ids);
    if (constraint) {
      // Choices fork from one prompt: each gets its own matcher in the starting state.
      auto m = i == 0 ? constraint->start() : rr.seqs[0]->smp->constraint()->clone();
      s->smp->set_constraint(std::move(m), tok_ ? static_cast<int32_t>(tok_->vocab_size()) : 0);
    }
    if (tok_) s->dec = std::make_unique<incremental_decoder>(*tok_, true);
    s->stop = std::make_unique<stop_checker>(rr.req.params.stop);
    seqs_[s->id] = s.get();
    to_start_.push_back(s.get());
    rr.seqs.push_back(std::move(s));
  }
  return handle;
}

bool scheduler_core::scores_prompt(const sequence& s) const {
  return s.index == 0 && s.req->req.params.prompt_logprobs >= 0 &&
         static_cast<int32_t>(s.req->prompt_lp.size()) < s.num_prompt - 1;
}

// Keeps the scored positions that extend the request's prompt logprobs in order: a recompute after
// preemption scores positions again, and they are not taken twice.
void scheduler_core::collect_prompt_logprobs(sequence& s, const step_logits& logits, int32_t row) {
  if (s.index != 0) return;
  auto& got = s.req->prompt_lp;
  for (const position_logprobs& p : logits.prompt) {
    if (p.seq != row || p.position >= s.num_prompt) continue;
    if (p.position == static_cast<int32_t>(got.size()) + 1) got.push_back(p.lp);
  }
}

scheduler_core::sequence* scheduler_core::find_seq(uint64_t seq_id) {
  auto it = seqs_.find(seq_id);
  return it == seqs_.end() ? nullptr : it->second;
}

// Each batch entry's answer, found in O(1): the executor's sampled token, else its (last) row.
void scheduler_core::index_step_output(const step_logits& logits) {
  const size_t n = oldest_flight().seqs.size();
  sampled_of_.assign(n, -1);
  row_of_.assign(n, -1);
  for (size_t k = 0; k < logits.sampled.size(); ++k) {
    const auto i = static_cast<size_t>(logits.sampled[k].seq);
    if (i < sampled_of_.size()) sampled_of_[i] = static_cast<int32_t>(k);
  }
  for (int64_t k = 0; k < logits.num_rows() && k < static_cast<int64_t>(logits.row_seq.size()); ++k) {
    const auto i = static_cast<size_t>(logits.row_seq[static_cast<size_t>(k)]);
    if (i < row_of_.size()) row_of_[i] = k;
  }
}

void scheduler_core::on_step_output(const step_logits& logits) {
  if (num_flight_ == 0) return;
  index_step_output(logits);
  const step_record& rec = oldest_flight();
  for (size_t i = 0; i < rec.seqs.size(); ++i) {
    sequence* s = rec.seqs[i];  // entries turn null when their request ends during this loop
    // Cancelled mid-step, or (async scheduling) ended by the step before this one: its token here
    // was computed for nothing.
    if (!s || s->ph != sequence::phase::running) continue;
    collect_prompt_logprobs(*s, logits, static_cast<int32_t>(i));
    s->num_computed += rec.chunk[i];
    if (s->num_computed < static_cast<int32_t>(s->tokens.size())) {
      // A prompt chunk short of the end: nothing to sample yet.
    } else if (s->req->req.params.max_tokens == 0) {
      // Scoring only (echo / prompt_logprobs with max_tokens 0): the prompt is done, nothing to sample.
      for (auto& c : s->req->seqs) c->waits_for_parent = false;
      emit(*s, {}, {}, {}, finish_reason::length);
      commit_full_blocks(*s);
      finish_sequence(*s, finish_reason::length);
      continue;
    } else {
      // Serving: the executor sampled it. Otherwise (rows from a backend driven directly, or a step
      // that crossed processes without its sampler) sample its row here.
      const sampled_seq* t = nullptr;
      if (sampled_of_[i] >= 0) {
        t = &logits.sampled[static_cast<size_t>(sampled_of_[i])];
      } else if (const int64_t r = row_of_[i]; r >= 0) {
        row_.assign(logits.row(r), logits.row(r) + logits.vocab_size);
        local_sample_ = sample_row(*s->smp, row_, static_cast<int32_t>(i));
        t = &local_sample_;
      } else {
        fail_request(*s->req, make_error(errc::internal, "the executor returned no logits for a sequence"));
        continue;
      }
      if (t->blocked) {  // the constraint allows nothing more: stop without a token
        std::string text;
        if (s->dec && !s->stop->stopped()) {
          stop_output so = s->stop->feed(s->dec->flush());
          text = std::move(so.text);
          if (!so.stopped) text += s->stop->flush();
        }
        emit(*s, {}, text, {}, finish_reason::stop);
        commit_full_blocks(*s);
        finish_sequence(*s, finish_reason::stop);
        continue;
      }
      const int32_t token = t->token.token;
      s->tokens.push_back(token);
      ++s->num_generated;
      ++generation_tokens_total_;
      ++s->req->usage.completion_tokens;
      const bool want_lp = s->req->req.params.logprobs >= 0;
      token_finish tf = check_token_finish(s->req->req.params, stop_rules_, token, s->num_generated,
                                           static_cast<int64_t>(s->tokens.size()));
      finish_reason fin = tf == token_finish::none ? finish_reason::none
                          : is_length_finish(tf)    ? finish_reason::length
                                                    : finish_reason::stop;
      if (fin == finish_reason::none && t->terminated) fin = finish_reason::stop;
      std::string text;
      const bool token_is_stop = tf == token_finish::eos || tf == token_finish::stop_token;
      // Logprobs follow the text: EOS and stop ids have none, cut tokens none (logprob_aligner.h).
      if (want_lp && !token_is_stop) s->lps.add(t->token, s->dec ? s->decoded : -1);
      if (s->dec && !token_is_stop) {
        const std::string piece = s->dec->push(token);
        s->decoded += static_cast<int64_t>(piece.size());
        stop_output so = s->stop->feed(piece, s->num_generated >= s->req->req.params.min_tokens);
        text = std::move(so.text);
        if (so.stopped) fin = finish_reason::stop;
      }
      if (fin != finish_reason::none && s->dec && !s->stop->stopped()) {
        stop_output so = s->stop->feed(s->dec->flush());
        text += so.text;
        if (!so.stopped) text += s->stop->flush();
      }
      s->returned += static_cast<int64_t>(text.size());
      std::vector<token_logprobs> lp = fin == finish_reason::none
                                           ? s->lps.release(s->returned)
                                           : s->lps.finish(s->returned, s->dec && s->stop->stopped());
      if (s->index == 0 && s->num_generated == 1)
        for (auto& c : s->req->seqs)
          if (c->waits_for_parent) c->waits_for_parent = false;
      emit(*s, {&token, 1}, text, std::move(lp), fin);
      if (fin != finish_reason::none) {
        // Its blocks computed this step still go to the prefix cache (commits precede releases).
        commit_full_blocks(*s);
        finish_sequence(*s, fin);
        continue;
      }
    }
    commit_full_blocks(*s);
  }
  pop_flight();
}

void scheduler_core::on_step_failed(const error& err) {
  if (num_flight_ == 0) return;
  delta_.resend_all();  // the executors may have applied the step's delta, or part of it
  step_record& rec = oldest_flight();
  for (size_t i = 0; i < rec.seqs.size(); ++i)
    if (sequence* s = rec.seqs[i]) fail_request(*s->req, err);  // nulls the request's other entries
  pop_flight();
}

void scheduler_core::on_blocks_failed(const error& err) {
  planning_ = false;
  for (size_t i = 0; i < plan_.seqs.size(); ++i)
    if (sequence* s = plan_.seqs[i]) fail_request(*s->req, err);
  plan_.clear();
}

int32_t scheduler_core::fail_waiting(const error& err) {
  assert(!planning_);
  std::vector<uint64_t> handles;
  for (const sequence* s : to_start_)
    if (std::find(handles.begin(), handles.end(), s->req->handle) == handles.end()) handles.push_back(s->req->handle);
  // fail_request erases from to_start_ (release_sequence), so the handles are collected first.
  for (uint64_t h : handles) {
    auto it = requests_.find(h);
    if (it != requests_.end()) fail_request(*it->second, err);
  }
  return static_cast<int32_t>(handles.size());
}

// Events carry the request's handle, not its id: the sink that gets them knows the id (no copy of
// the id per token).
void scheduler_core::emit(sequence& s, std::span<const int32_t> ids, std::string_view text,
                          std::vector<token_logprobs>&& lp, finish_reason fin) {
  const bool first = s.first_event;
  s.first_event = false;
  const bool prompt_lp = first && s.req->req.params.prompt_logprobs >= 0;
  events_.add_event(s.req->handle, s.index, ids, text, fin, first ? s.req->queue_time_s : 0.0,
                    fin != finish_reason::none ? s.req->usage : usage_info{}, std::move(lp),
                    prompt_lp ? &s.req->prompt_lp : nullptr);
}

void scheduler_core::finish_sequence(sequence& s, finish_reason why) {
  if (s.ph == sequence::phase::done) return;
  release_sequence(s);
  s.ph = sequence::phase::done;
  ++s.req->num_done;
  erase_if_done(*s.req);
}

void scheduler_core::cancel(uint64_t handle) {
  auto it = requests_.find(handle);
  if (it == requests_.end()) return;
  request_state& r = *it->second;
  std::vector<sequence*> live;
  for (auto& s : r.seqs)
    if (s->ph != sequence::phase::done) live.push_back(s.get());
  for (sequence* s : live) {
    emit(*s, {}, {}, {}, finish_reason::cancelled);
    finish_sequence(*s, finish_reason::cancelled);  // may erase the request on the last one
  }
}

void scheduler_core::drop(uint64_t handle) {
  auto it = requests_.find(handle);
  if (it == requests_.end()) return;
  request_state& r = *it->second;
  for (auto& s : r.seqs)
    if (s->ph != sequence::phase::done) {
      release_sequence(*s);
      s->ph = sequence::phase::done;
      ++r.num_done;
    }
  erase_if_done(r);
}

void scheduler_core::fail_request(request_state& r, const error& err) {
  events_.add_failure(r.handle, err);
  for (auto& s : r.seqs)
    if (s->ph != sequence::phase::done) {
      release_sequence(*s);
      s->ph = sequence::phase::done;
    }
  r.num_done = static_cast<int32_t>(r.seqs.size());
  erase_if_done(r);
}

void scheduler_core::erase_if_done(request_state& r) {
  if (r.num_done < static_cast<int32_t>(r.seqs.size())) return;
  for (auto& s : r.seqs) seqs_.erase(s->id);
  // Sequences of the plan and the steps in flight become tombstones: each batch keeps its row order.
  auto tombstone = [&r](step_record& rec) {
    for (auto& s : rec.seqs)
      if (s && s->req == &r) s = nullptr;
  };
  tombstone(plan_);
  for (int32_t k = 0; k < num_flight_; ++k) tombstone(flight_[(flight_head_ + k) % 2]);
  finished_requests_.push_back(r.handle);
  requests_.erase(r.handle);
}

std::vector<core_output> scheduler_core::take_outputs() {
  std::vector<core_output> outs(events_.size());
  for (size_t k = 0; k < events_.size(); ++k) {
    outs[k].request = events_.entries[k].request;
    if (events_.entries[k].failed) outs[k].failure = events_.failure(k);
    else events_.read(k, outs[k].event);
  }
  events_.clear();
  return outs;
}
std::vector<uint64_t> scheduler_core::take_finished_requests() { return std::exchange(finished_requests_, {}); }

}  // namespace troupe
