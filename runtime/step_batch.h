// One forward step's input and output. A step mixes prefill chunks of some sequences with single
// decode tokens of others; each sequence addresses its KV cache through a block table of block ids
// leased from the block manager (cache_block_seq_len tokens per block). When serving, a step also
// carries each sequence's sampler and the executor answers with sampled tokens, not logits rows.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/id_list.h"
#include "troupe/generation.h"

namespace troupe {

class sampler;

struct seq_step {
  int64_t seq_id = 0;
  id_list tokens;                    // [n] new tokens: a prefill chunk, or 1 decode token (inline)
  int32_t start_pos = 0;             // position of tokens[0]; positions [0, start_pos) are in KV
  // A whole batch (step_batch::delta false): block ids covering positions [0, start_pos + n).
  // A delta (serving): the ids appended since the executor last saw this sequence — all of them when
  // new_seq — and the executor's persistent batch holds the whole table (step_batch::tables).
  id_list block_table;  // a decode step appends at most one id: inline, no heap allocation
  bool new_seq = false;              // delta: (re)start the sequence's row (new, or resumed after preemption)
  // Async scheduling: tokens[0] stands for the token this executor sampled for the sequence in the
  // previous step, which the scheduler had not seen when it planned this one; the persistent batch
  // puts it in (a decode step planned while the step before it was still running).
  bool feed_sampled = false;
  bool want_logits = true;           // logits of the last new token (false: mid-prompt chunk)
  bool want_all_logits = false;      // logits of every new token (tests)
  // Prompt scoring: >= 0 asks for, at every new position, the log-softmax of its logits taken at
  // the token that follows (tokens[j + 1], then next_token) plus the top k. The backend reduces
  // where the logits are: only these entries leave it, never [n, vocab] rows.
  int32_t prompt_logprobs = -1;
  int32_t next_token = -1;  // the token after tokens.back() when known (-1: none, nothing to score)
  // Serving: the sequence's sampler (want_logits, !want_all_logits). The executor that answers for
  // the step samples the row where it computed it and returns a sampled_seq instead of the row; the
  // scheduler leaves the sampler alone while the step is in flight (shared: a step abandoned by the
  // watchdog may still finish on a hung executor after its request is gone). In-process only: the
  // message inspector leaves it out, so a step that crossed processes arrives without it and its
  // rows come back as logits.
  std::shared_ptr<sampler> sampling;
};

// One scored position: `lp.token` at absolute `position` given tokens [0, position).
struct position_logprobs {
  int32_t seq = 0;  // index into step_batch::seqs
  int32_t position = 0;
  token_logprobs lp;  // the token's logprob and the top k, best first (ties: lower id)
};

// One sequence's token, sampled by the executor from its row (seq_step::sampling).
struct sampled_seq {
  int32_t seq = 0;          // index into step_batch::seqs
  token_logprobs token;     // the id; logprob and top k only when the sequence asked for logprobs
  bool blocked = false;     // the constraint allowed nothing: `token` means nothing, the sequence stops
  bool terminated = false;  // the constraint is complete after `token`: nothing may follow it
};

// The step's block tables as the executor's persistent batch holds them (runtime/persistent_batch.h):
// seqs[i]'s table is row row_of[i] of `data` [num_rows, stride], len[row_of[i]] ids long. Rows in
// `dirty` changed since the previous step's view from column dirty_from[k] on (a device backend
// patches only those into its own copy). In-process only, never serialized.
struct block_table_view {
  const int32_t* data = nullptr;        // [num_rows, stride] row-major, reused across steps
  int64_t stride = 0;
  int64_t num_rows = 0;
  const int32_t* len = nullptr;         // [num_rows]
  const int32_t* row_of = nullptr;      // [seqs.size()]
  const int32_t* dirty = nullptr;       // [num_dirty] rows
  const int32_t* dirty_from = nullptr;  // [num_dirty] first changed column of each
  int64_t num_dirty = 0;
};

struct step_batch {
  std::vector<seq_step> seqs;
  int64_t step_id = 0;  // increasing per scheduler; tensor-parallel ranks scope their collectives by it
  // Serving steps are deltas against the executor's persistent batch: `reset` clears it first (a
  // fresh or failed executor gets everything again), `removed` lists sequences that finished or were
  // preempted since the previous step, and each seq_step carries only its appended block ids.
  bool delta = false;
  bool reset = false;
  std::vector<int64_t> removed;
  block_table_view tables;  // set by the executor's persistent batch (delta) before forward()
  int64_t num_tokens() const {
    int64_t n = 0;
    for (const auto& s : seqs) n += static_cast<int64_t>(s.tokens.size());
    return n;
  }
};

// seqs[i]'s whole block table: from the persistent batch's view when there is one, else its own.
inline std::span<const int32_t> block_table_of(const step_batch& b, size_t i) {
  if (b.tables.data) {
    const int64_t r = b.tables.row_of[i];
    return {b.tables.data + r * b.tables.stride, static_cast<size_t>(b.tables.len[r])};
  }
  return b.seqs[i].block_table;
}

// A step's answer. Serving steps carry `sampled` and no rows; rows are for sequences without a
// sampler (tests, a step from another process).
struct step_logits {
  // For each seq with want_logits (and no sampler that ran): one row; with want_all_logits: one row
  // per new token. rows[i] belongs to seqs[row_seq[i]]; each row is [vocab_size] float32.
  std::vector<int32_t> row_seq;
  std::vector<float> data;  // [num_rows, vocab_size]
  int64_t vocab_size = 0;
  std::vector<position_logprobs> prompt;  // seqs with prompt_logprobs >= 0, in seq then position order
  std::vector<sampled_seq> sampled;       // seqs sampled by the executor, in seq order
  int64_t num_rows() const { return vocab_size ? static_cast<int64_t>(data.size()) / vocab_size : 0; }
  const float* row(int64_t i) const { return data.data() + i * vocab_size; }
};

}  // namespace troupe
