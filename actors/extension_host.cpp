// The extension host (see extension_host.h). Design note: each call (a filter chain, a route
// request) is a short-lived actor that requests the extension with a timeout and monitors it, so
// the three ways a call can end (reply, timeout, crash) are all handled in one place and `done`
// runs exactly once. A supervisor actor monitors every extension actor and respawns a dead one
// from its factory (at most k_max_restarts times), so one crash fails one call, not the server.
#include "actors/extension_host.h"

#include <atomic>
#include <mutex>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/to_string.hpp>

#include "actors/messages.h"  // wake_atom, the internal type-ID block
#include "config/log.h"
#include "troupe/extension.h"

namespace troupe {
namespace {

constexpr int k_max_restarts = 100;

enum class slot_kind { filter, observer, route };

struct slot {
  slot_kind kind;
  std::string name;
  std::function<caf::actor(caf::actor_system&)> make;
  std::chrono::milliseconds timeout{0};
  caf::actor handle;  // the current incarnation; null once it may not restart any more
  int restarts = 0;
};

// --- one call: a filter chain or a route request ---------------------------------------------

class host_impl;
// A call that saw its extension die replaces it before answering, so the client's next request
// already finds the successor (the supervisor would, too, but later).
void replace_dead(host_impl* host, const caf::actor_addr& dead, const caf::error& reason);

struct call_target {
  std::string name;
  caf::actor handle;
  std::chrono::milliseconds timeout;
};

struct filter_call_state {
  host_impl* host = nullptr;
  std::vector<call_target> chain;
  size_t next = 0;
  filter_request req;
  std::function<void(filter_verdict)> done;
  caf::actor_addr current;
  static inline const char* name = "ext_filter_call";
};

using filter_call_ptr = caf::stateful_actor<filter_call_state>*;

void finish_filter(filter_call_ptr self, filter_verdict v) {
  if (self->state.done) {
    auto done = std::move(self->state.done);
    self->state.done = nullptr;
    done(std::move(v));
  }
  self->quit();
}

void filter_step(filter_call_ptr self) {
  auto& st = self->state;
  if (st.next == st.chain.size()) {
    finish_filter(self, filter_verdict::accept_with(st.req.request.params));
    return;
  }
  const call_target& t = st.chain[st.next];
  if (!t.handle) {
    finish_filter(self, filter_verdict::reject(503, "request filter '" + t.name + "' is unavailable", "filter_failed"));
    return;
  }
  st.current = t.handle.address();
  self->monitor(t.handle);
  const std::string name = t.name;
  self->request(caf::actor_cast<request_filter_actor>(t.handle), t.timeout, filter_atom_v, st.req)
      .then(
          [self](filter_verdict& v) {
            auto& s = self->state;
            self->demonitor(s.current);
            s.current = caf::actor_addr{};
            if (!v.accept) {
              if (v.status < 400 || v.status > 599) v.status = 403;
              finish_filter(self, std::move(v));
              return;
            }
            if (v.rewrite) s.req.request.params = v.params;
            ++s.next;
            filter_step(self);
          },
          [self, name](caf::error& e) {
            if (e == caf::sec::request_timeout) {
              finish_filter(self, filter_verdict::reject(503, "request filter '" + name + "' did not answer in time",
                                                         "filter_timeout"));
            } else {
              if (e == caf::sec::request_receiver_down) replace_dead(self->state.host, self->state.current, e);
              finish_filter(self, filter_verdict::reject(500, "request filter '" + name + "' failed: " +
                                                                  caf::to_string(e), "filter_failed"));
            }
          });
}

caf::behavior filter_call(filter_call_ptr self, host_impl* host, std::vector<call_target> chain, filter_request req,
                          std::function<void(filter_verdict)> done) {
  self->state.host = host;
  self->state.chain = std::move(chain);
  self->state.req = std::move(req);
  self->state.done = std::move(done);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source != self->state.current) return;
    const std::string& name = self->state.chain[self->state.next].name;
    logger("extensions")->error("request filter '{}' crashed: {}", name, caf::to_string(dm.reason));
    replace_dead(self->state.host, dm.source, dm.reason);
    finish_filter(self, filter_verdict::reject(500, "request filter '" + name + "' crashed: " +
                                                        caf::to_string(dm.reason), "filter_failed"));
  });
  filter_step(self);
  return {[](wake_atom) {}};  // everything arrives as responses or down messages
}

struct route_call_state {
  std::function<void(route_result)> done;
  std::string ext_name;
  static inline const char* name = "ext_route_call";
};

using route_call_ptr = caf::stateful_actor<route_call_state>*;

void finish_route(route_call_ptr self, route_result r) {
  if (self->state.done) {
    auto done = std::move(self->state.done);
    self->state.done = nullptr;
    done(std::move(r));
  }
  self->quit();
}

route_result route_error(int32_t status, std::string message, std::string code) {
  return extension_failure{status, std::move(code), std::move(message)};
}

caf::behavior route_call(route_call_ptr self, host_impl* host, call_target t, route_request req,
                         std::function<void(route_result)> done) {
  self->state.done = std::move(done);
  self->state.ext_name = t.name;
  if (!t.handle) {
    finish_route(self, route_error(503, "route '" + t.name + "' is unavailable", "route_failed"));
    return {[](wake_atom) {}};
  }
  self->monitor(t.handle);
  self->set_down_handler([self, host](caf::down_msg& dm) {
    logger("extensions")->error("route '{}' crashed: {}", self->state.ext_name, caf::to_string(dm.reason));
    replace_dead(host, dm.source, dm.reason);
    finish_route(self, route_error(500, "route '" + self->state.ext_name + "' crashed: " + caf::to_string(dm.reason),
                                   "route_failed"));
  });
  self->request(caf::actor_cast<route_handler_actor>(t.handle), t.timeout, route_atom_v, std::move(req))
      .then([self](route_response& r) { finish_route(self, std::move(r)); },
            [self, host, dead = t.handle.address()](caf::error& e) {
              if (e == caf::sec::request_receiver_down) replace_dead(host, dead, e);
              const std::string& name = self->state.ext_name;
              if (e == caf::sec::request_timeout) {
                finish_route(self, route_error(504, "route '" + name + "' did not answer in time", "route_timeout"));
              } else {
                finish_route(self, route_error(500, "route '" + name + "' failed: " + caf::to_string(e),
                                               "route_failed"));
              }
            });
  return {[](wake_atom) {}};
}

// --- the host ---------------------------------------------------------------------------------

caf::behavior supervisor(caf::event_based_actor* self, host_impl* host, std::vector<caf::actor> initial);

class host_impl final : public extension_host, public std::enable_shared_from_this<host_impl> {
 public:
  explicit host_impl(const extensions& set) {
    cfg_.add_message_types<caf::id_block::troupe_api>();
    cfg_.add_message_types<caf::id_block::troupe>();
    cfg_.add_message_types<caf::id_block::troupe_ext>();
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    for (const auto& f : set.filters()) {
      auto make = f.make;
      slots_.push_back({slot_kind::filter, f.name, [make](caf::actor_system& s) {
                          return caf::actor_cast<caf::actor>(make(s));
                        }, f.timeout, {}, 0});
    }
    for (const auto& o : set.observers()) {
      auto make = o.make;
      slots_.push_back({slot_kind::observer, o.name, [make](caf::actor_system& s) {
                          return caf::actor_cast<caf::actor>(make(s));
                        }, std::chrono::milliseconds(0), {}, 0});
    }
    for (const auto& r : set.routes()) {
      auto make = r.make;
      slots_.push_back({slot_kind::route, r.name, [make](caf::actor_system& s) {
                          return caf::actor_cast<caf::actor>(make(s));
                        }, r.timeout, {}, 0});
      routes_.push_back({r.name, r.method, r.path, r.needs_auth});
      route_slot_.push_back(slots_.size() - 1);
    }
    std::vector<caf::actor> initial;
    for (slot& s : slots_) {
      s.handle = s.make(*sys_);
      initial.push_back(s.handle);
      logger("extensions")->info("extension '{}' started ({})", s.name, kind_name(s.kind));
    }
    auto sup = sys_->spawn(supervisor, this, std::move(initial));
    std::lock_guard<std::mutex> lock(mu_);  // respawn() may already run on the supervisor
    supervisor_ = std::move(sup);
  }

  ~host_impl() override { stop(); }

  static const char* kind_name(slot_kind k) {
    return k == slot_kind::filter ? "request filter" : k == slot_kind::observer ? "stream observer" : "route";
  }

  bool has_filters() const override { return count(slot_kind::filter) > 0; }
  bool has_observers() const override { return count(slot_kind::observer) > 0; }

  const extension_route* find_route(std::string_view path) const override {
    for (const auto& r : routes_)
      if (r.path == path) return &r;
    return nullptr;
  }

  void filter(filter_request req, std::function<void(filter_verdict)> done) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopped_) {
      lock.unlock();
      done(filter_verdict::reject(503, "the server is shutting down", "draining"));
      return;
    }
    std::vector<call_target> chain;
    for (const slot& s : slots_)
      if (s.kind == slot_kind::filter) chain.push_back({s.name, s.handle, s.timeout});
    sys_->spawn(filter_call, this, std::move(chain), std::move(req), std::move(done));
  }

  void route(const extension_route& r, route_request req, std::function<void(route_result)> done) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopped_) {
      lock.unlock();
      done(route_error(503, "the server is shutting down", "draining"));
      return;
    }
    const slot& s = slots_[route_slot_[static_cast<size_t>(&r - routes_.data())]];
    sys_->spawn(route_call, this, call_target{s.name, s.handle, s.timeout}, std::move(req), std::move(done));
  }

  void observe_begin(const request_info& info) override { notify(begin_atom_v, info); }
  void observe_event(const generation_event& ev) override { notify(event_atom_v, ev); }
  void observe_failure(const std::string& request_id, const error& e) override {
    notify(fail_atom_v, request_id, e);
  }

  void stop() override {
    std::unique_ptr<caf::actor_system> sys;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      anon_send_exit(supervisor_, caf::exit_reason::user_shutdown);
      // At normal priority: each actor first handles what was sent before (an observer writes
      // the last lines of requests that ended during the drain).
      for (slot& s : slots_)
        if (s.handle)
          caf::anon_send<caf::message_priority::normal>(
              s.handle, caf::exit_msg{caf::actor_addr{}, caf::error{caf::exit_reason::user_shutdown}});
      slots_.clear();
      supervisor_ = nullptr;
      sys = std::move(sys_);
    }
    sys.reset();  // waits for the extension actors and the calls in flight (bounded by timeouts)
  }

  // `dead` went down: spawn its successor and have the supervisor watch it. Whoever notices first
  // (the supervisor or a call) replaces it; later calls for the same `dead` find nothing to do.
  void respawn(const caf::actor_addr& dead, const caf::error& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    for (slot& s : slots_) {
      if (!s.handle || s.handle.address() != dead) continue;
      if (++s.restarts > k_max_restarts) {
        logger("extensions")->error("extension '{}' died ({}) and restarted too often: disabled", s.name,
                                    caf::to_string(reason));
        s.handle = nullptr;
        return;
      }
      logger("extensions")->warn("extension '{}' died ({}): restarting it", s.name, caf::to_string(reason));
      s.handle = s.make(*sys_);
      anon_send(supervisor_, wake_atom_v, s.handle);
      return;
    }
  }

 private:
  size_t count(slot_kind k) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const slot& s : slots_) n += s.kind == k;
    return n;
  }

  template <class... Ts>
  void notify(const Ts&... xs) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    for (const slot& s : slots_)
      if (s.kind == slot_kind::observer && s.handle) anon_send(caf::actor_cast<stream_observer_actor>(s.handle), xs...);
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  mutable std::mutex mu_;
  bool stopped_ = false;
  std::vector<slot> slots_;
  std::vector<extension_route> routes_;  // fixed after construction (find_route reads it unlocked)
  std::vector<size_t> route_slot_;       // [routes_.size()] index into slots_
  caf::actor supervisor_;
};

caf::behavior supervisor(caf::event_based_actor* self, host_impl* host, std::vector<caf::actor> initial) {
  for (const auto& a : initial) self->monitor(a);
  self->set_down_handler([host](caf::down_msg& dm) { host->respawn(dm.source, dm.reason); });
  return {[self](wake_atom, caf::actor& next) { self->monitor(next); }};
}

void replace_dead(host_impl* host, const caf::actor_addr& dead, const caf::error& reason) {
  if (host && dead) host->respawn(dead, reason);
}

}  // namespace

result<std::shared_ptr<extension_host>> extension_host::start(const std::vector<std::string>& names,
                                                              const extensions* code) {
  auto set = extension_registry::resolve(names);
  if (!set) return set.err();
  if (code) set->merge(*code);
  for (size_t i = 0; i < set->routes().size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (set->routes()[i].path == set->routes()[j].path)
        return make_error(errc::invalid_argument, "extensions '" + set->routes()[j].name + "' and '" +
                                                      set->routes()[i].name + "' both register " +
                                                      set->routes()[i].path);
    }
  }
  return std::shared_ptr<extension_host>(std::make_shared<host_impl>(*set));
}

}  // namespace troupe
