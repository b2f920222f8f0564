// Test doubles for the listener tests: fake_engine implements the engine facade by streaming a
// scripted token sequence from its own threads (like actor threads), can answer with an error
// (overloaded, draining, ...), and records submits and cancels. fake_codec maps bytes to tokens.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "actors/engine.h"
#include "net/text_codec.h"
#include "support/constraint_doubles.h"

namespace troupe::test {

// Token ids: bytes are 0..255, BOS is 256; vocab 512. "text" encodes to its bytes.
class fake_codec final : public text_codec {
 public:
  static constexpr int32_t bos = 256;
  bool has_tokenizer() const override { return true; }
  bool has_chat_template() const override { return true; }
  int64_t vocab_size() const override { return 512; }
  result<std::vector<int32_t>> encode(const std::string& text, bool add_special, bool) const override {
    std::vector<int32_t> ids;
    if (add_special) ids.push_back(bos);
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  result<std::string> decode(const std::vector<int32_t>& ids, bool) const override {
    std::string s;
    for (int32_t id : ids) s += id < 256 ? std::string(1, static_cast<char>(id)) : "<" + std::to_string(id) + ">";
    return s;
  }
  result<std::string> render_chat(const nlohmann::json& messages, bool add_generation_prompt,
                                  const nlohmann::json&) const override {
    std::string s;
    for (const auto& m : messages) s += "<|" + m["role"].get<std::string>() + "|>" + m["content"].get<std::string>() + "\n";
    if (add_generation_prompt) s += "<|assistant|>";
    return s;
  }
  // A stand-in for the grammar engine: choices compile to byte sequences; a spec whose text holds
  // "$bad" is refused like an unsupported schema keyword. Counts its calls.
  result<std::shared_ptr<const compiled_constraint>> compile(const constraint_spec& spec) const override {
    ++num_compiles;
    if (spec.text.find("$bad") != std::string::npos) {
      return make_error(errc::invalid_argument, "unsupported keyword '$bad' at $.properties.x");
    }
    std::vector<std::vector<int32_t>> choices;
    if (spec.type == constraint_spec::kind::choice) {
      for (const auto& c : nlohmann::json::parse(spec.text)) {
        const std::string s = c.get<std::string>();
        choices.emplace_back(s.begin(), s.end());
      }
    }
    return std::shared_ptr<const compiled_constraint>(std::make_shared<testing::compiled_choices>(choices, -1, true));
  }
  mutable std::atomic<int> num_compiles{0};
};

class fake_engine final : public engine {
 public:
  std::vector<std::string> pieces = {"a", "b", "c", "d"};  // one token each; token id = 'a'.. etc
  std::chrono::milliseconds delay{2};                      // between events: a slow decode step, simulated
  std::optional<error> fail_with;                          // answer every submit with this error
  // After this many steps a generation waits until it is cancelled (-1: never), so a cancel test
  // does not depend on the cancel outrunning the end of the generation.
  int32_t hold_after = -1;
  engine_stats stats_value;
  mutable std::atomic<int> plan_calls{0};
  bool stats_fail = false;

  fake_engine() {
    model_.name = "fake-model";
    model_.vocab_size = 512;
    model_.max_position_embeddings = 64;
    plan_.session_len = 64;
    plan_.device = "cpu";
    plan_.max_concurrent_requests = 8;
    rank_plan r;
    r.weights_bytes = 1000;
    r.reserve_bytes = 200;
    r.kv_bytes = 3000;
    plan_.ranks.push_back(r);
  }
  ~fake_engine() override { join(); }

  const model_config& model() const override { return model_; }
  const tokenizer* tok() const override { return nullptr; }
  const chat_template* chat() const override { return nullptr; }
  const memory_plan& plan() const override {
    ++plan_calls;
    return plan_;
  }
  const troupe_options& options() const override { return options_; }

  void submit(generation_request req, event_callback on_event, error_callback on_error) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      submitted_.push_back(req);
    }
    std::lock_guard<std::mutex> lock(threads_mu_);
    threads_.emplace_back([this, req = std::move(req), on_event, on_error] { play(req, on_event, on_error); });
  }

  void cancel(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_.insert(id);
    cv_.notify_all();
  }

  result<engine_stats> stats(std::chrono::milliseconds) override {
    if (stats_fail) return make_error(errc::timeout, "stats timed out");
    return stats_value;
  }

  void drain(std::chrono::milliseconds) override { drained_ = true; }

  // Waits until some request was cancelled; returns its id or "" on timeout.
  std::string wait_cancel(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !cancelled_.empty(); });
    return cancelled_.empty() ? std::string() : *cancelled_.begin();
  }
  size_t num_cancelled() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_.size();
  }
  std::vector<generation_request> submitted() {
    std::lock_guard<std::mutex> lock(mu_);
    return submitted_;
  }
  bool drained() const { return drained_; }
  void join() {
    std::vector<std::thread> ts;
    {
      std::lock_guard<std::mutex> lock(threads_mu_);
      ts.swap(threads_);
    }
    for (auto& t : ts) t.join();
  }

 private:
  bool is_cancelled(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_.count(id) > 0;
  }

  void play(const generation_request& req, const event_callback& on_event, const error_callback& on_error) {
    if (fail_with) {
      on_error(*fail_with);
      return;
    }
    const int32_t total = std::min<int32_t>(static_cast<int32_t>(pieces.size()), req.params.max_tokens);
    std::vector<int32_t> produced(static_cast<size_t>(req.n), 0);
    std::vector<bool> finished(static_cast<size_t>(req.n), false);
    int32_t num_finished = 0;
    // Round-robin over choices, one token per event, like a decode step.
    for (int32_t step = 0; num_finished < req.n; ++step) {
      if (hold_after >= 0 && step >= hold_after) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(30), [&] { return cancelled_.count(req.request_id) > 0; });
      }
      std::this_thread::sleep_for(delay);
      const bool cancelled = is_cancelled(req.request_id);
      for (int32_t i = 0; i < req.n; ++i) {
        if (finished[static_cast<size_t>(i)]) continue;
        generation_event ev;
        ev.request_id = req.request_id;
        ev.index = i;
        ev.queue_time_s = 0.001;
        if (cancelled) {
          ev.finish = finish_reason::cancelled;
        } else {
          const std::string& piece = pieces[static_cast<size_t>(step)];
          ev.text = piece;
          ev.token_ids = {static_cast<int32_t>(static_cast<unsigned char>(piece[0]))};
          if (req.params.logprobs >= 0) {
            token_logprobs lp{ev.token_ids[0], -0.5f, {}};
            for (int32_t k = 0; k < req.params.logprobs; ++k) lp.top.push_back({'a' + k, -0.5f - k});
            ev.logprobs.push_back(lp);
          }
          ++produced[static_cast<size_t>(i)];
          if (step + 1 >= total) {
            ev.finish = total < static_cast<int32_t>(pieces.size()) ? finish_reason::length : finish_reason::stop;
          }
        }
        if (ev.finish != finish_reason::none) {
          finished[static_cast<size_t>(i)] = true;
          ++num_finished;
          ev.usage.prompt_tokens = static_cast<int32_t>(req.prompt_ids.size());
          for (int32_t p : produced) ev.usage.completion_tokens += p;
        }
        on_event(ev);
      }
    }
  }

  model_config model_;
  memory_plan plan_;
  troupe_options options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> cancelled_;
  std::vector<generation_request> submitted_;
  std::atomic<bool> drained_{false};
  std::mutex threads_mu_;
  std::vector<std::thread> threads_;
};

}  // namespace troupe::test
