// Test doubles of the structured-output contract (runtime/token_constraint.h): a matcher that
// allows exactly one of a few token sequences, then the end-of-sequence token, so the sampler, the
// scheduling core and the listener can be tested without the grammar engine.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/token_constraint.h"

namespace troupe::testing {

// Allows the token sequences in `choices` (as a trie): the next token of every choice the output
// so far is a prefix of; `eos` once the output equals a whole choice. Terminated after `eos`, or
// (terminate_on_complete) as soon as a choice is complete and none extends it.
class choice_matcher final : public token_constraint {
 public:
  choice_matcher(std::vector<std::vector<int32_t>> choices, int32_t eos, bool terminate_on_complete)
      : choices_(std::move(choices)), eos_(eos), terminate_on_complete_(terminate_on_complete) {}

  void fill_mask(token_mask& mask) override {
    ++num_fills;
    for (uint64_t w : mask.words) mask_was_clear = mask_was_clear && w == 0;
    for (const auto& c : choices_) {
      if (!is_prefix(c)) continue;
      if (c.size() > out_.size()) {
        mask.set(c[out_.size()]);
      } else if (eos_ >= 0) {
        mask.set(eos_);
      }
    }
  }
  bool accept(int32_t token) override {
    if (done_) return false;
    if (token == eos_ && complete()) {
      done_ = true;
      return true;
    }
    out_.push_back(token);
    for (const auto& c : choices_)
      if (is_prefix(c)) return true;
    out_.pop_back();
    return false;
  }
  bool is_terminated() const override {
    if (done_) return true;
    if (!terminate_on_complete_ || !complete()) return false;
    for (const auto& c : choices_)
      if (c.size() > out_.size() && is_prefix(c)) return false;
    return true;
  }
  std::unique_ptr<token_constraint> clone() const override { return std::make_unique<choice_matcher>(*this); }

  const std::vector<int32_t>& output() const { return out_; }
  int num_fills = 0;
  bool mask_was_clear = true;  // every fill_mask got an empty mask

 private:
  bool is_prefix(const std::vector<int32_t>& c) const {
    if (c.size() < out_.size()) return false;
    for (size_t i = 0; i < out_.size(); ++i)
      if (c[i] != out_[i]) return false;
    return true;
  }
  bool complete() const {
    for (const auto& c : choices_)
      if (c == out_) return true;
    return false;
  }

  std::vector<std::vector<int32_t>> choices_;
  int32_t eos_ = -1;
  bool terminate_on_complete_ = false;
  std::vector<int32_t> out_;
  bool done_ = false;
};

class compiled_choices final : public compiled_constraint {
 public:
  compiled_choices(std::vector<std::vector<int32_t>> choices, int32_t eos, bool terminate_on_complete)
      : choices_(std::move(choices)), eos_(eos), terminate_(terminate_on_complete) {}
  std::unique_ptr<token_constraint> start() const override {
    return std::make_unique<choice_matcher>(choices_, eos_, terminate_);
  }

 private:
  std::vector<std::vector<int32_t>> choices_;
  int32_t eos_;
  bool terminate_;
};

}  // namespace troupe::testing
