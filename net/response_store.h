// The in-memory store of Responses API responses (store: true): bounded in count
// (--response-store-size) and age (--response-store-ttl), oldest evicted first. Each entry belongs
// to the API key that created it; any other key sees it as absent. Thread-safe (HTTP and WebSocket
// sessions on several I/O threads share one store).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace troupe {

struct stored_response {
  std::string id;                // "resp_..."
  std::string owner;             // the API key (bearer token) that created it; "" without one
  nlohmann::json response;       // the response object as GET returns it
  nlohmann::json input_items;    // this response's own input items (GET .../input_items)
  nlohmann::json conversation;   // chat messages: history + input + output (for previous_response_id)
  std::vector<int32_t> tokens;   // prompt + output token ids (the KV a next turn can reuse)
  size_t bytes = 0;              // approximate memory held (set by put)
};

class response_store {
 public:
  using clock = std::chrono::steady_clock;
  // Called (outside the lock) for every entry that leaves the store: evicted, expired or deleted.
  using evict_callback = std::function<void(const stored_response&)>;

  response_store(int32_t max_entries, double ttl_s, std::function<clock::time_point()> now = clock::now);

  void on_evict(evict_callback cb);

  // Stores (or replaces) an entry; evicts the oldest beyond the size bound. With max_entries 0
  // nothing is kept (the entry is handed to the evict callback at once).
  void put(stored_response r);
  // The entry when it exists, is not expired and belongs to `owner`; else null.
  std::shared_ptr<const stored_response> get(const std::string& id, const std::string& owner);
  // Deletes an entry of `owner`; false when absent (or another key's).
  bool erase(const std::string& id, const std::string& owner);
  // Drops expired entries now (also done by every put/get).
  void expire();

  struct counters {
    int64_t num_entries = 0;
    int64_t num_bytes = 0;
    int64_t num_evicted = 0;  // by size or age (not deletes)
    int64_t continued_prompt_tokens = 0;
    int64_t continued_cached_tokens = 0;
  };
  counters stats() const;
  // A turn that continued a conversation (previous_response_id): its prompt and cached tokens.
  void count_turn(int64_t prompt_tokens, int64_t cached_tokens);
  // Prometheus text of the store's gauges and counters.
  std::string metrics_text() const;

 private:
  struct entry {
    std::shared_ptr<const stored_response> r;
    clock::time_point at;
  };
  using order_list = std::list<entry>;  // oldest first

  // Removes expired and over-limit entries under the lock; returns them for the callback.
  std::vector<std::shared_ptr<const stored_response>> trim_locked();
  void notify(const std::vector<std::shared_ptr<const stored_response>>& gone);

  const int32_t max_entries_;
  const clock::duration ttl_;
  std::function<clock::time_point()> now_;
  mutable std::mutex mu_;
  order_list order_;
  std::unordered_map<std::string, order_list::iterator> by_id_;
  int64_t num_bytes_ = 0;
  int64_t num_evicted_ = 0;
  int64_t continued_prompt_tokens_ = 0;
  int64_t continued_cached_tokens_ = 0;
  evict_callback on_evict_;
};

}  // namespace troupe
