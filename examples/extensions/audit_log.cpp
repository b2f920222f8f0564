// audit_log: a stream observer that appends one JSON line per finished request to a file
// (TROUPE_AUDIT_LOG, default troupe-audit.jsonl): request id, masked API key, path, token usage,
// finish reasons or the error, and wall time. It only receives anon_sends, so it never slows
// generation; a line is flushed as soon as the request ends.
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>

#include "troupe/extension.h"

namespace {

struct live_request {
  troupe::request_info info;
  int32_t num_finished = 0;
  std::vector<std::string> finish_reasons;  // [n] as choices end
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

struct audit_state {
  std::ofstream out;
  std::unordered_map<std::string, live_request> live;  // by request id
  static inline const char* name = "audit_log";
};

std::string mask_key(const std::string& key) {
  if (key.empty()) return "";
  return key.substr(0, std::min<size_t>(4, key.size())) + "***";
}

void write_line(audit_state& st, const std::string& id, const live_request* r, nlohmann::json extra) {
  nlohmann::json line = {{"ts", static_cast<int64_t>(std::time(nullptr))}, {"request_id", id}};
  if (r) {
    line["api_key"] = mask_key(r->info.http.api_key);
    line["path"] = r->info.http.path;
    line["n"] = r->info.n;
    line["duration_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - r->start).count();
  }
  line.update(extra);
  st.out << line.dump() << '\n';
  st.out.flush();
}

troupe::stream_observer_actor::behavior_type audit(troupe::stream_observer_actor::stateful_pointer<audit_state> self,
                                                   std::string path) {
  self->state.out.open(path, std::ios::app);
  return {
      [self](troupe::begin_atom, const troupe::request_info& info) {
        self->state.live[info.request_id].info = info;
      },
      [self](troupe::event_atom, const troupe::generation_event& ev) {
        if (ev.finish == troupe::finish_reason::none) return;
        auto& st = self->state;
        auto it = st.live.find(ev.request_id);
        if (it == st.live.end()) return;  // began before this observer (re)started
        live_request& r = it->second;
        r.finish_reasons.push_back(troupe::finish_reason_name(ev.finish));
        if (++r.num_finished < std::max(1, r.info.n)) return;
        write_line(st, ev.request_id, &r,
                   {{"status", "ok"},
                    {"prompt_tokens", ev.usage.prompt_tokens},
                    {"completion_tokens", ev.usage.completion_tokens},
                    {"cached_prompt_tokens", ev.usage.cached_prompt_tokens},
                    {"finish_reasons", r.finish_reasons}});
        st.live.erase(it);
      },
      [self](troupe::fail_atom, const std::string& id, const troupe::error& e) {
        auto& st = self->state;
        auto it = st.live.find(id);
        write_line(st, id, it == st.live.end() ? nullptr : &it->second,
                   {{"status", "error"}, {"error", e.to_string()}});
        if (it != st.live.end()) st.live.erase(it);
      },
  };
}

void install(troupe::extensions& ex) {
  const char* env = std::getenv("TROUPE_AUDIT_LOG");
  std::string path = env && *env ? env : "troupe-audit.jsonl";
  ex.add_observer("audit_log", [path](caf::actor_system& sys) { return sys.spawn(audit, path); });
}

}  // namespace

TROUPE_REGISTER_EXTENSION(audit_log, "audit_log", install)
