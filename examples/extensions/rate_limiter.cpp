// rate_limiter: a request filter that lets each API key make at most N generation requests per
// sliding window (429 beyond), and caps max_tokens (a rewrite). Settings from the environment:
// TROUPE_RATE_LIMIT_REQUESTS (default 60), TROUPE_RATE_LIMIT_WINDOW_S (60),
// TROUPE_RATE_LIMIT_MAX_TOKENS (0 = no cap). Counters live in the actor: a restart forgets them.
#include <chrono>
#include <cstdlib>
#include <deque>
#include <string>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/extension.h"

namespace {

using clock_type = std::chrono::steady_clock;

struct limiter_config {
  int32_t max_requests = 60;
  double window_s = 60.0;
  int32_t max_tokens_cap = 0;
};

struct limiter_state {
  limiter_config cfg;
  std::unordered_map<std::string, std::deque<clock_type::time_point>> seen;  // key -> request times
  static inline const char* name = "rate_limiter";
};

troupe::request_filter_actor::behavior_type limiter(
    troupe::request_filter_actor::stateful_pointer<limiter_state> self, limiter_config cfg) {
  self->state.cfg = cfg;
  return {
      [self](troupe::filter_atom, const troupe::filter_request& r) -> troupe::filter_verdict {
        const limiter_config& c = self->state.cfg;
        const std::string key = r.http.api_key.empty() ? "(anonymous)" : r.http.api_key;
        const auto now = clock_type::now();
        const auto window = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(c.window_s));
        auto& times = self->state.seen[key];
        while (!times.empty() && now - times.front() >= window) times.pop_front();
        if (static_cast<int32_t>(times.size()) >= c.max_requests) {
          return troupe::filter_verdict::reject(429,
                                                "rate limit exceeded: at most " + std::to_string(c.max_requests) +
                                                    " requests per " + std::to_string(static_cast<int>(c.window_s)) +
                                                    " s for this API key",
                                                "rate_limited");
        }
        times.push_back(now);
        if (c.max_tokens_cap > 0 && r.request.params.max_tokens > c.max_tokens_cap) {
          troupe::sampling_params p = r.request.params;
          p.max_tokens = c.max_tokens_cap;
          return troupe::filter_verdict::accept_with(p);
        }
        return troupe::filter_verdict::accept_as_is();
      },
  };
}

double env_number(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : fallback;
}

void install(troupe::extensions& ex) {
  limiter_config cfg;
  cfg.max_requests = static_cast<int32_t>(env_number("TROUPE_RATE_LIMIT_REQUESTS", 60));
  cfg.window_s = env_number("TROUPE_RATE_LIMIT_WINDOW_S", 60);
  cfg.max_tokens_cap = static_cast<int32_t>(env_number("TROUPE_RATE_LIMIT_MAX_TOKENS", 0));
  ex.add_filter("rate_limiter", [cfg](caf::actor_system& sys) { return sys.spawn(limiter, cfg); });
}

}  // namespace

TROUPE_REGISTER_EXTENSION(rate_limiter, "rate_limiter", install)
