// The router actor and the router-side sink actor (see router_actor.h).
#include "actors/router_actor.h"

#include <algorithm>
#include <deque>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/to_string.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "config/log.h"

namespace troupe {
namespace {

// --- the router --------------------------------------------------------------------------------

struct worker_slot {
  host_port addr;
  std::string state = "connecting";
  std::string reason;
  worker_actor handle;              // valid while the connection lives (up or refused)
  scheduler_actor scheduler;        // valid while up
  worker_hello hello;
  engine_stats reported;
  uint64_t generation = 0;          // bumped on every connection; `done` of older ones is ignored
  int64_t num_local_in_flight = 0;
  int64_t num_others_in_flight = 0;  // other routers' requests: the report minus ours when it came
  uint64_t num_routed = 0;
  uint64_t num_lost = 0;
  uint64_t num_connects = 0;
  std::unordered_set<uint64_t> prefixes;  // prefix hashes of prompts recently sent to it
  std::deque<uint64_t> prefix_order;      // the same, oldest first (bounded memory)
};

constexpr size_t k_prefix_memory = 16384;  // prefix hashes remembered per worker

struct router_state {
  router_config cfg;
  std::shared_ptr<cluster_view> view;
  std::vector<worker_slot> slots;
  static inline const char* name = "router";
};

using router_pointer = router_actor::stateful_pointer<router_state>;

// The deepest level of `prefix` (chained hashes) this worker was sent recently.
int32_t prefix_depth(const worker_slot& s, const std::vector<uint64_t>& prefix) {
  for (size_t i = prefix.size(); i > 0; --i)
    if (s.prefixes.count(prefix[i - 1])) return static_cast<int32_t>(i);
  return 0;
}

void remember_prefix(worker_slot& s, const std::vector<uint64_t>& prefix) {
  for (uint64_t h : prefix) {
    if (!s.prefixes.insert(h).second) continue;
    s.prefix_order.push_back(h);
    if (s.prefix_order.size() > k_prefix_memory) {
      s.prefixes.erase(s.prefix_order.front());
      s.prefix_order.pop_front();
    }
  }
}

worker_load load_of(const worker_slot& s) {
  worker_load l;
  l.up = s.state == "up";
  l.max_concurrent = s.hello.max_concurrent;
  l.max_queued = s.hello.max_queued;
  l.num_in_flight = s.num_local_in_flight + s.num_others_in_flight;
  l.num_blocks_total = s.reported.num_blocks_total > 0 ? s.reported.num_blocks_total : s.hello.num_blocks;
  l.num_blocks_used = s.reported.num_blocks_used;
  l.num_routed = s.num_routed;
  return l;
}

// Copies the slots into the shared view. `wanted` is owned by the connector once set to false;
// the router sets it back to true when a worker needs reaching again.
void publish(router_pointer self, std::optional<size_t> want_again = std::nullopt) {
  auto& st = self->state;
  std::lock_guard<std::mutex> lock(st.view->mu);
  for (size_t i = 0; i < st.slots.size(); ++i) {
    const worker_slot& s = st.slots[i];
    worker_snapshot& w = st.view->workers[i];
    w.reason = s.reason;
    w.state = s.state;
    w.load = load_of(s);
    w.reported = s.reported;
    w.num_local_in_flight = s.num_local_in_flight;
    w.num_lost = s.num_lost;
    w.num_connects = s.num_connects;
  }
  if (want_again) st.view->workers[*want_again].wanted = true;
}

void mark_down(router_pointer self, size_t i, const std::string& why) {
  worker_slot& s = self->state.slots[i];
  if (s.state == "up")
    logger("cluster")->warn("worker {} is down ({}); its {} in-flight request(s) fail, it gets no traffic until it "
                            "is back", s.addr.to_string(), why, s.num_local_in_flight);
  s.state = "down";
  s.reason = why;
  s.handle = nullptr;
  s.scheduler = nullptr;
  s.reported = engine_stats{};
  s.num_local_in_flight = 0;
  s.num_others_in_flight = 0;
  s.prefixes.clear();  // a restarted worker's cache is empty
  s.prefix_order.clear();
  ++s.generation;
  publish(self, i);
}

void handshake(router_pointer self, uint32_t i, worker_actor w) {
  auto& st = self->state;
  worker_slot& s = st.slots[i];
  s.handle = w;
  s.state = "connecting";
  const uint64_t gen = ++s.generation;
  self->monitor(w);
  self->request(w, st.cfg.handshake_timeout, hello_atom_v, st.cfg.identity)
      .then(
          [self, i, gen](worker_hello& h) {
            worker_slot& s = self->state.slots[i];
            if (s.generation != gen) return;
            if (auto why = identity_mismatch(self->state.cfg.identity, h.identity)) {
              logger("cluster")->error("refusing worker {}: {}", s.addr.to_string(), *why);
              s.state = "refused";
              s.reason = *why;
              publish(self);
              return;
            }
            s.hello = std::move(h);
            s.scheduler = s.hello.scheduler;
            s.state = "up";
            s.reason.clear();
            ++s.num_connects;
            logger("cluster")->info("worker {} is up ({}; {} KV blocks, max {} concurrent requests){}",
                                    s.addr.to_string(), s.hello.identity.model_name, s.hello.num_blocks,
                                    s.hello.max_concurrent, s.num_connects > 1 ? " - rejoined" : "");
            publish(self);
          },
          [self, i, gen](caf::error& e) {
            if (self->state.slots[i].generation != gen) return;
            mark_down(self, i, "handshake failed: " + self->system().render(e));
          });
  publish(self);
}

void poll(router_pointer self) {
  auto& st = self->state;
  const auto timeout = std::max(std::chrono::milliseconds(1000), st.cfg.poll_interval * 4);
  for (uint32_t i = 0; i < st.slots.size(); ++i) {
    worker_slot& s = st.slots[i];
    if (s.state != "up") continue;
    const uint64_t gen = s.generation;
    self->request(s.scheduler, timeout, stats_atom_v)
        .then(
            [self, i, gen](engine_stats& r) {
              worker_slot& s = self->state.slots[i];
              if (s.generation != gen) return;
              s.reported = r;
              s.num_others_in_flight =
                  std::max<int64_t>(0, r.num_requests_running + r.num_requests_waiting - s.num_local_in_flight);
              publish(self);
            },
            [](caf::error&) {});  // a dead worker is noticed by its down message
  }
  self->delayed_send(self, st.cfg.poll_interval, poll_atom_v);
}

// A worker started with --join announced itself (again every reconnect interval): a new address
// gets a slot; a known one is handshaken unless this very worker actor is already connected.
void on_announce(router_pointer self, const std::string& address, worker_actor w) {
  auto& st = self->state;
  size_t i = 0;
  while (i < st.slots.size() && st.slots[i].addr.to_string() != address) ++i;
  if (i == st.slots.size()) {
    auto a = parse_host_port(address);
    if (!a) {
      logger("cluster")->warn("ignoring a worker announcement: {}", a.err().message);
      return;
    }
    st.slots.emplace_back();
    st.slots.back().addr = *a;
    worker_snapshot snap;
    snap.address = address;
    snap.wanted = false;  // no connector: it announces itself
    std::lock_guard<std::mutex> lock(st.view->mu);
    st.view->workers.push_back(std::move(snap));
    logger("cluster")->info("worker {} joined", address);
  }
  worker_slot& s = st.slots[i];
  if (s.handle == w && s.state != "down") return;  // the periodic re-announcement
  if (s.state == "up") mark_down(self, i, "replaced by a new worker process on the same address");
  {
    std::lock_guard<std::mutex> lock(st.view->mu);
    st.view->workers[i].wanted = false;  // a connector (if any) need not reach it
  }
  handshake(self, static_cast<uint32_t>(i), std::move(w));
}

// Each worker's state and reason as /health shows them (the shared view also knows what the
// connectors found, e.g. a worker whose link TLS refused).
std::string summary(router_pointer self) {
  std::lock_guard<std::mutex> lock(self->state.view->mu);
  std::string out;
  for (const worker_snapshot& w : self->state.view->workers) {
    out += (out.empty() ? "" : "; ") + w.address + " " + w.shown_state();
    if (!w.shown_reason().empty()) out += " (" + w.shown_reason() + ")";
  }
  return out;
}

router_actor::behavior_type router(router_pointer self, router_config cfg, std::shared_ptr<cluster_view> view) {
  auto& st = self->state;
  st.view = std::move(view);
  for (const host_port& a : cfg.workers) {
    st.slots.emplace_back();
    st.slots.back().addr = a;
  }
  st.cfg = std::move(cfg);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& slots = self->state.slots;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].handle && caf::actor_cast<caf::actor_addr>(slots[i].handle) == dm.source) {
        mark_down(self, i, "connection lost: " + caf::to_string(dm.reason));
        return;
      }
    }
  });
  poll(self);
  return {
      [self](pick_atom, const std::vector<uint64_t>& prefix) -> caf::result<route_ticket> {
        auto& slots = self->state.slots;
        std::vector<worker_load> loads;
        for (const worker_slot& s : slots) {
          loads.push_back(load_of(s));
          loads.back().prefix_depth = prefix_depth(s, prefix);
        }
        auto best = pick_worker(loads);
        if (!best) {
          const bool any_up = std::any_of(slots.begin(), slots.end(), [](auto& s) { return s.state == "up"; });
          if (!any_up)
            return to_caf_error(make_error(errc::unavailable, "no worker is up: " + summary(self)));
          return to_caf_error(make_error(errc::overloaded, "every worker is at its admission limit "
                                                           "(max concurrent + queued requests)"));
        }
        worker_slot& s = slots[*best];
        remember_prefix(s, prefix);
        ++s.num_local_in_flight;
        ++s.num_routed;
        publish(self);
        return route_ticket{static_cast<uint32_t>(*best), s.generation, s.addr.to_string(), s.scheduler};
      },
      [self](done_atom, uint32_t i, uint64_t gen, bool lost) {
        auto& slots = self->state.slots;
        if (i >= slots.size()) return;
        worker_slot& s = slots[i];
        if (lost) ++s.num_lost;
        if (s.generation == gen && s.num_local_in_flight > 0) --s.num_local_in_flight;
        publish(self);
      },
      [self](connect_atom, uint32_t i, worker_actor w) {
        if (i < self->state.slots.size()) handshake(self, i, std::move(w));
      },
      [self](announce_atom, std::string& address, worker_actor& w) { on_announce(self, address, std::move(w)); },
      [self](poll_atom) { poll(self); },
  };
}

join_actor::behavior_type join_acceptor(join_actor::pointer self, router_actor router) {
  self->monitor(router);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  return {
      [self, router](announce_atom, std::string& address, worker_actor& w) {
        self->send(router, announce_atom_v, std::move(address), std::move(w));
      },
  };
}

// --- the router-side sink ------------------------------------------------------------------

// (No handle as the first member: C++20 would let CAF build the state from the actor pointer.)
struct cluster_sink_state {
  int32_t num_choices = 1;
  router_actor router;
  generation_request req;            // until submitted
  std::vector<uint64_t> prefix;      // the prompt's prefix hashes, for the pick
  std::string request_id;
  std::optional<route_ticket> ticket;
  event_callback on_event;
  error_callback on_error;
  int32_t num_finished = 0;
  bool cancelled = false;            // cancel arrived before the worker was chosen
  bool done = false;
  generation_event scratch;          // each event of a batch in turn
  static inline const char* name = "cluster_sink";
};

using cluster_sink_pointer = sink_actor::stateful_pointer<cluster_sink_state>;

void finish(cluster_sink_pointer self, std::optional<error> e, bool lost) {
  auto& st = self->state;
  if (!st.done) {
    st.done = true;
    if (e) st.on_error(*e);
  }
  if (st.ticket) self->send(st.router, done_atom_v, st.ticket->worker, st.ticket->generation, lost);
  st.ticket.reset();
  self->quit();
}

void submit_to_worker(cluster_sink_pointer self, route_ticket t) {
  auto& st = self->state;
  st.ticket = t;
  self->monitor(t.scheduler);  // already dead: the down message comes at once
  // No CAF timeout (as in sink_actor.cpp): the scheduler answers every submit, and the monitor
  // above covers a worker that goes away. (CAF 0.17 drops a request's timeout only when the actor
  // exits, never on the answer: harmless for this short-lived sink, a leak for long-lived actors.)
  self->request(t.scheduler, caf::infinite, submit_atom_v, std::move(st.req), caf::actor_cast<sink_actor>(self))
      .then([](uint64_t) {},
            [self](caf::error& e) {
              // The worker's own answers (overloaded, draining, ...) pass through; a CAF error here
              // means the worker could not be reached (it died between the pick and the submit).
              if (e.category() == caf::atom("troupe")) return finish(self, from_caf_error(e), false);
              const std::string addr = self->state.ticket ? self->state.ticket->address : "?";
              finish(self,
                     error{errc::unavailable, "worker " + addr + " could not take the request (" +
                                                  self->system().render(e) + ")"},
                     true);
            });
  if (st.cancelled) self->send(t.scheduler, cancel_atom_v, st.request_id);  // after the submit (FIFO)
}

void on_cluster_event(cluster_sink_pointer self, const generation_event& ev) {
  auto& st = self->state;
  if (st.done) return;
  st.on_event(ev);
  if (ev.finish != finish_reason::none && ++st.num_finished >= st.num_choices) {
    st.done = true;
    finish(self, std::nullopt, false);
  }
}

void cancel_cluster_request(cluster_sink_pointer self) {
  auto& st = self->state;
  if (st.ticket) self->send(st.ticket->scheduler, cancel_atom_v, st.request_id);
  else st.cancelled = true;
}

sink_actor::behavior_type cluster_sink(cluster_sink_pointer self, router_actor router, generation_request req,
                                       std::vector<uint64_t> prefix, event_callback on_event,
                                       error_callback on_error) {
  auto& st = self->state;
  st.router = router;
  st.request_id = req.request_id;
  st.num_choices = std::max(1, req.n);
  st.req = std::move(req);
  st.on_event = std::move(on_event);
  st.on_error = std::move(on_error);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (!st.ticket || caf::actor_cast<caf::actor_addr>(st.ticket->scheduler) != dm.source) return;
    finish(self,
           error{errc::unavailable, "worker " + st.ticket->address + " went away mid-request (" +
                                        caf::to_string(dm.reason) + "); this request was not completed"},
           true);
  });
  self->request(router, caf::infinite, pick_atom_v, std::move(prefix))  // local; always answers
      .then([self](route_ticket& t) { submit_to_worker(self, std::move(t)); },
            [self](caf::error& e) { finish(self, from_caf_error(e), false); });
  return {
      [self](event_atom, const generation_event& ev) { on_cluster_event(self, ev); },
      [self](events_atom, const event_batch& evs) {
        auto& st = self->state;
        for (size_t k = 0; k < evs.size(); ++k) {  // all this request's (one sink per request)
          if (evs.entries[k].failed) return finish(self, evs.failure(k), false);
          if (st.done) return;
          evs.read(k, st.scratch);  // batches carry handles: the id is this sink's
          if (st.scratch.request_id != st.request_id) st.scratch.request_id = st.request_id;
          on_cluster_event(self, st.scratch);
        }
      },
      [self](fail_atom, const error& e) { finish(self, e, false); },
      [self](cancel_atom) { cancel_cluster_request(self); },
      [self](cancel_atom, const std::string&) { cancel_cluster_request(self); },
  };
}

}  // namespace

router_actor spawn_router(caf::actor_system& sys, router_config cfg, std::shared_ptr<cluster_view> view) {
  return sys.spawn(router, std::move(cfg), std::move(view));
}

join_actor spawn_join_acceptor(caf::actor_system& sys, router_actor router) {
  return sys.spawn(join_acceptor, std::move(router));
}

sink_actor spawn_cluster_sink(caf::actor_system& sys, router_actor router, generation_request req,
                              std::vector<uint64_t> prefix, event_callback on_event, error_callback on_error) {
  return sys.spawn(cluster_sink, std::move(router), std::move(req), std::move(prefix), std::move(on_event),
                   std::move(on_error));
}

}  // namespace troupe
