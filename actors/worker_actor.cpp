// The published worker actor and its middleman set-up (see worker_actor.h).
#include "actors/worker_actor.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/cluster_messages.h"
#include "actors/cluster_tls.h"
#include "actors/cluster_transport.h"
#include "config/log.h"

namespace troupe {
namespace {

struct worker_state {
  static inline const char* name = "worker";
};

worker_actor::behavior_type worker(worker_actor::stateful_pointer<worker_state> self, scheduler_actor sched,
                                   worker_hello hello) {
  self->monitor(sched);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  return {
      [self, hello](hello_atom, const cluster_identity& router) -> worker_hello {
        if (auto why = identity_mismatch(router, hello.identity))
          logger("cluster")->error("a router connected that this worker cannot serve: {}", *why);
        else
          logger("cluster")->info("a router connected (handshake ok)");
        return hello;
      },
  };
}

// --join: announces the worker to the router's join port every reconnect interval, on a thread of
// its own (remote_actor blocks). Stopped and joined when the worker actor quits.
struct joiner {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;
};

void start_joiner(caf::actor_system& sys, worker_actor w, const std::string& advertised, const troupe_options& opts) {
  auto target = parse_host_port(opts.cluster.join);
  if (!target) {
    logger("cluster")->error("{}", target.err().message);
    return;
  }
  auto j = std::make_shared<joiner>();
  const auto interval = std::chrono::milliseconds(static_cast<int64_t>(opts.cluster.reconnect_interval_s * 1000));
  j->thread = std::thread([j, &sys, w, advertised, to = *target, interval, opts] {
    std::string last_error = "-";
    for (;;) {
      auto r = connect_join(sys, opts, to);
      if (r) {
        anon_send(*r, announce_atom_v, advertised, w);
        if (!last_error.empty()) logger("cluster")->info("announced this worker to the router at {}", to.to_string());
        last_error.clear();
      } else {
        // CAF only says the connection closed; a handshake of our own says which certificate failed.
        const std::string tls = diagnose_tls_refusal(opts, to, std::chrono::milliseconds(2000));
        const std::string msg = tls.empty() ? sys.render(r.error()) : "TLS refused the link: " + tls;
        if (msg != last_error) {
          if (tls.empty())
            logger("cluster")->info("the router at {} is not reachable ({}); trying again every {} s", to.to_string(),
                                    msg, std::chrono::duration<double>(interval).count());
          else
            logger("cluster")->error("cannot join the router at {}: {}; trying again every {} s", to.to_string(), msg,
                                     std::chrono::duration<double>(interval).count());
        }
        last_error = msg;
      }
      std::unique_lock<std::mutex> lock(j->mu);
      if (j->cv.wait_for(lock, interval, [&] { return j->stop; })) return;
    }
  });
  caf::actor_cast<caf::abstract_actor*>(w)->attach_functor([j] {
    {
      std::lock_guard<std::mutex> lock(j->mu);
      j->stop = true;
    }
    j->cv.notify_all();
    j->thread.join();
  });
}

}  // namespace

void prepare_worker_system(caf::actor_system_config& cfg, const troupe_options& opts) {
  if (opts.cluster.role != "worker") return;
  prepare_cluster_transport(cfg, opts);
  cfg.add_message_types<caf::id_block::troupe_cluster>();
}

result<uint16_t> publish_worker(caf::actor_system& sys, scheduler_actor sched, const loaded_model& m,
                                const troupe_options& opts) {
  worker_hello hello;
  hello.identity = make_cluster_identity(m.config, m.tok.get());
  hello.scheduler = sched;
  hello.max_concurrent = opts.engine.max_concurrent_requests;
  hello.max_queued = opts.engine.max_queued_requests;
  hello.num_blocks = m.plan.num_blocks;
  hello.block_seq_len = m.plan.block_seq_len;
  hello.session_len = m.plan.session_len;
  auto w = sys.spawn(worker, std::move(sched), std::move(hello));
  const std::string host = opts.cluster.cluster_host.empty() ? opts.server.host : opts.cluster.cluster_host;
  auto port = publish_on_cluster(sys, opts, w, opts.cluster.cluster_port, host);
  if (!port) {
    anon_send_exit(w, caf::exit_reason::user_shutdown);
    return make_error(errc::io_error, "cannot publish the worker on " + host + ":" +
                                          std::to_string(opts.cluster.cluster_port) + ": " + sys.render(port.error()) +
                                          " (is --cluster-port in use?)");
  }
  logger("cluster")->info("worker published on {}:{} (model {}, {} KV blocks); cluster links: {}", host, *port,
                          m.config.name, m.plan.num_blocks, describe_cluster_transport(opts));
  if (!opts.cluster.join.empty())
    start_joiner(sys, w, host_port{host, *port}.to_string(), opts);
  return *port;
}

}  // namespace troupe
