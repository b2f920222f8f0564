// The router node's engine (see cluster_engine.h): submit spawns a router-side sink; stats, health
// and /metrics read the router's shared view of the workers; drain waits for the router's own
// requests; connector threads make the blocking remote_actor calls, never an actor.
#include "actors/cluster_engine.h"

#include <atomic>
#include <functional>
#include <condition_variable>
#include <filesystem>
#include <thread>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "actors/actor_system_setup.h"
#include "actors/cluster_tls.h"
#include "actors/cluster_transport.h"
#include "actors/model_loader.h"
#include "actors/request_registry.h"
#include "actors/router_actor.h"
#include "config/log.h"
#include "config/paths.h"
#include "config/prometheus_text.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;

constexpr int32_t k_prefix_levels = 32;  // prompt blocks hashed for prefix-aware routing

class cluster_engine final : public engine {
 public:
  cluster_engine(troupe_options opts, loaded_model m, std::vector<host_port> addrs)
      : opts_(std::move(opts)), m_(std::move(m)), addrs_(std::move(addrs)) {
    cfg_.add_message_types<caf::id_block::troupe_api>();
    cfg_.add_message_types<caf::id_block::troupe>();
    cfg_.add_message_types<caf::id_block::troupe_cluster>();
    prepare_cluster_transport(cfg_, opts_);
    configure_actor_scheduler(cfg_, opts_.engine);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    view_ = std::make_shared<cluster_view>();
    for (const host_port& a : addrs_) {
      worker_snapshot w;
      w.address = a.to_string();
      view_->workers.push_back(std::move(w));
    }
    router_config rc;
    rc.identity = make_cluster_identity(m_.config, m_.tok.get());
    rc.workers = addrs_;
    rc.poll_interval = std::chrono::milliseconds(static_cast<int64_t>(opts_.cluster.poll_interval_s * 1000));
    router_ = spawn_router(*sys_, std::move(rc), view_);
    for (size_t i = 0; i < addrs_.size(); ++i) connectors_.emplace_back([this, i] { connect_loop(i); });
  }

  ~cluster_engine() override {
    {
      std::lock_guard<std::mutex> lock(stop_mu_);
      stop_ = true;
    }
    stop_cv_.notify_all();
    for (auto& t : connectors_) t.join();
    requests_.fail_all(error{errc::draining, "the router is shutting down"});
    anon_send_exit(router_, caf::exit_reason::user_shutdown);
    sys_.reset();
  }

  const model_config& model() const override { return m_.config; }
  const tokenizer* tok() const override { return m_.tok.get(); }
  const chat_template* chat() const override { return m_.chat.get(); }
  const memory_plan& plan() const override { return m_.plan; }
  const troupe_options& options() const override { return opts_; }

  void submit(generation_request req, event_callback on_event, error_callback on_error) override {
    if (draining_.load()) {
      on_error(error{errc::draining, "the server is shutting down"});
      return;
    }
    std::vector<uint64_t> prefix;
    if (opts_.cluster.prefix_routing)
      prefix = prefix_hashes(req.prompt_ids, opts_.engine.cache_block_seq_len, k_prefix_levels);
    requests_.submit(std::move(req), std::move(on_event), std::move(on_error),
                     [this, &prefix](generation_request r, event_callback ev, error_callback err) {
                       return spawn_cluster_sink(*sys_, router_, std::move(r), std::move(prefix), std::move(ev),
                                                 std::move(err));
                     });
  }

  void cancel(const std::string& request_id) override { requests_.cancel(request_id); }

  // The sum over the workers that are up; an error (HTTP 503 on /health) when none is.
  result<engine_stats> stats(std::chrono::milliseconds) override {
    std::lock_guard<std::mutex> lock(view_->mu);
    engine_stats sum;
    std::string why;
    int32_t num_up = 0;
    for (const worker_snapshot& w : view_->workers) {
      if (w.state != "up") {
        const std::string& r = w.shown_reason();
        why += (why.empty() ? "" : "; ") + w.address + " " + w.shown_state() + (r.empty() ? "" : " (" + r + ")");
        continue;
      }
      ++num_up;
      const engine_stats& r = w.reported;
      sum.num_requests_running += r.num_requests_running;
      sum.num_requests_waiting += r.num_requests_waiting;
      sum.num_blocks_total += r.num_blocks_total;
      sum.num_blocks_used += r.num_blocks_used;
      sum.num_blocks_cached += r.num_blocks_cached;
      sum.prefix_cache_queries += r.prefix_cache_queries;
      sum.prefix_cache_hits += r.prefix_cache_hits;
      sum.num_preemptions += r.num_preemptions;
      sum.prompt_tokens_total += r.prompt_tokens_total;
      sum.generation_tokens_total += r.generation_tokens_total;
      sum.num_steps += r.num_steps;
      sum.num_steps_planned_ahead += r.num_steps_planned_ahead;
      sum.num_step_failures += r.num_step_failures;
      sum.num_alloc_failures += r.num_alloc_failures;
      sum.num_alloc_failed_requests += r.num_alloc_failed_requests;
    }
    if (num_up == 0)
      return make_error(errc::unavailable, "no worker is up: " + (why.empty() ? std::string("none has joined yet") : why));
    return sum;
  }

  void drain(std::chrono::milliseconds timeout) override {
    draining_ = true;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (requests_.empty()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    logger("cluster")->warn("drain timeout: cancelling the requests still in flight");
    requests_.cancel_all();
  }

  std::string cluster_metrics() override;

  // --join-port: publish the join acceptor for workers started with --join.
  status publish_join() {
    if (!opts_.cluster.join_port) return ok_status();
    const std::string host = opts_.cluster.cluster_host.empty() ? opts_.server.host : opts_.cluster.cluster_host;
    auto port = publish_on_cluster(*sys_, opts_, spawn_join_acceptor(*sys_, router_), *opts_.cluster.join_port, host);
    if (!port)
      return make_error(errc::io_error, "cannot publish the join port on " + host + ":" +
                                            std::to_string(*opts_.cluster.join_port) + ": " + sys_->render(port.error()));
    logger("cluster")->info("router accepts joining workers on {}:{}", host, *port);
    return ok_status();
  }

 private:
  // Design note: remote_actor blocks (TCP connect + the middleman's handshake), so it runs here,
  // on a thread of its own per worker, never in an actor. The router sets `wanted` when the worker
  // must be reached again (start, death, failed handshake); a success hands the handle to the router.
  void connect_loop(size_t i) {
    const host_port a = addrs_[i];
    const auto interval = std::chrono::milliseconds(static_cast<int64_t>(opts_.cluster.reconnect_interval_s * 1000));
    std::string last_error;
    for (;;) {
      bool wanted = false;
      {
        std::lock_guard<std::mutex> lock(view_->mu);
        wanted = view_->workers[i].wanted;
      }
      if (wanted) {
        auto w = connect_worker(*sys_, opts_, a);
        // CAF only says the connection closed; a handshake of our own says which certificate failed.
        const std::string tls = w ? "" : diagnose_tls_refusal(opts_, a, std::chrono::milliseconds(2000));
        std::lock_guard<std::mutex> lock(view_->mu);
        if (w) {
          view_->workers[i].wanted = false;
          view_->workers[i].connect_error.clear();
          view_->workers[i].connect_refused = false;
          last_error.clear();
          anon_send(router_, connect_atom_v, static_cast<uint32_t>(i), *w);
        } else if (!tls.empty()) {
          // Not a worker of this cluster (or this router is not trusted by it): never used.
          view_->workers[i].connect_error = "TLS refused the link: " + tls;
          view_->workers[i].connect_refused = true;
          if (tls != last_error)
            logger("cluster")->error("refusing worker {}: TLS refused the link: {}; trying again every {} s",
                                     a.to_string(), tls, opts_.cluster.reconnect_interval_s);
          last_error = tls;
        } else {
          const std::string msg = sys_->render(w.error());
          view_->workers[i].connect_error = "cannot connect: " + msg;
          view_->workers[i].connect_refused = false;
          if (msg != last_error)
            logger("cluster")->info("worker {} is not reachable ({}); trying again every {} s", a.to_string(), msg,
                                    opts_.cluster.reconnect_interval_s);
          last_error = msg;
        }
      }
      std::unique_lock<std::mutex> lock(stop_mu_);
      if (stop_cv_.wait_for(lock, interval, [this] { return stop_; })) return;
    }
  }

  troupe_options opts_;
  loaded_model m_;
  std::vector<host_port> addrs_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<cluster_view> view_;
  router_actor router_;
  std::vector<std::thread> connectors_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::atomic<bool> draining_{false};
  request_registry requests_;  // live requests by id (for cancel)
};

std::string cluster_engine::cluster_metrics() {
  std::vector<worker_snapshot> ws;
  {
    std::lock_guard<std::mutex> lock(view_->mu);
    ws = view_->workers;
  }
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help,
                    const std::function<double(const worker_snapshot&)>& value) {
    out += prom_family_header(name, type, help);
    for (const worker_snapshot& w : ws)
      out += std::string(name) + "{worker=\"" + prom_escape_label(w.address) + "\"} " + prom_number(value(w)) + "\n";
  };
  auto up = [](const worker_snapshot& w) { return w.state == "up"; };
  family("troupe:cluster_worker_up", "gauge", "1 when the worker is connected and passed the handshake.",
         [&](auto& w) { return up(w) ? 1.0 : 0.0; });
  out += prom_family_header("troupe:cluster_worker_state", "gauge",
                            "The worker's state (connecting, up, down, refused) and why.");
  for (const worker_snapshot& w : ws) {
    const std::string& r = w.shown_reason();
    out += "troupe:cluster_worker_state{worker=\"" + prom_escape_label(w.address) + "\",state=\"" + w.shown_state() +
           "\",reason=\"" + prom_escape_label(r) + "\"} 1\n";
  }
  family("troupe:cluster_worker_requests_in_flight", "gauge", "Requests of this router on the worker now.",
         [](auto& w) { return static_cast<double>(w.num_local_in_flight); });
  family("troupe:cluster_worker_requests_running", "gauge", "Requests running on the worker (its last report).",
         [&](auto& w) { return up(w) ? static_cast<double>(w.reported.num_requests_running) : 0.0; });
  family("troupe:cluster_worker_requests_waiting", "gauge", "Requests waiting on the worker (its last report).",
         [&](auto& w) { return up(w) ? static_cast<double>(w.reported.num_requests_waiting) : 0.0; });
  family("troupe:cluster_worker_kv_blocks_used", "gauge", "KV blocks leased on the worker (its last report).",
         [&](auto& w) { return up(w) ? static_cast<double>(w.reported.num_blocks_used) : 0.0; });
  family("troupe:cluster_worker_kv_cache_usage_perc", "gauge", "KV-cache usage of the worker, 1 = full.",
         [&](auto& w) {
           return up(w) && w.reported.num_blocks_total > 0
                      ? static_cast<double>(w.reported.num_blocks_used) / static_cast<double>(w.reported.num_blocks_total)
                      : 0.0;
         });
  family("troupe:cluster_worker_requests_routed_total", "counter", "Requests this router sent to the worker.",
         [](auto& w) { return static_cast<double>(w.load.num_routed); });
  family("troupe:cluster_worker_requests_lost_total", "counter",
         "Requests failed because the worker went away mid-request.",
         [](auto& w) { return static_cast<double>(w.num_lost); });
  family("troupe:cluster_worker_connects_total", "counter", "Successful handshakes with the worker (1 + rejoins).",
         [](auto& w) { return static_cast<double>(w.num_connects); });
  return out;
}

}  // namespace

result<std::unique_ptr<engine>> start_cluster_engine(const troupe_options& opts) {
  std::vector<host_port> addrs;
  for (const std::string& w : opts.cluster.workers) {
    auto a = parse_host_port(w);
    if (!a) return a.err();
    addrs.push_back(*a);
  }
  if (addrs.empty() && !opts.cluster.join_port)
    return make_error(errc::invalid_argument, "--role router needs --workers host:port,... or --join-port");
  loaded_model m;
  m.path = opts.engine.model.model.empty() ? default_model_path() : opts.engine.model.model;
  auto cfg = read_model_config(m.path);
  if (!cfg) return cfg.err();
  m.config = *cfg;
  {
    fs::path p(m.path);  // the API's model id, as load_model derives it
    std::error_code ec;
    m.config.name = fs::is_directory(p, ec) ? p.filename().string() : p.stem().string();
    if (m.config.name.empty() || m.config.name == "config") m.config.name = p.parent_path().filename().string();
  }
  TROUPE_TRY(load_tokenizer(m.path, m, opts.engine.model.chat_template));
  m.plan.device = "cluster";
  m.plan.block_seq_len = opts.engine.cache_block_seq_len;
  m.plan.session_len = opts.engine.session_len > 0 ? opts.engine.session_len : m.config.max_position_embeddings;
  std::string list;
  for (auto& a : addrs) list += (list.empty() ? "" : ", ") + a.to_string();
  logger("cluster")->info("router for {} in front of {} listed worker(s){}{}; cluster links: {}", m.config.name,
                          addrs.size(), list.empty() ? "" : ": " + list,
                          opts.cluster.join_port ? " (and of workers that join)" : "", describe_cluster_transport(opts));
  auto eng = std::make_unique<cluster_engine>(opts, std::move(m), std::move(addrs));
  TROUPE_TRY(eng->publish_join());
  return std::unique_ptr<engine>(std::move(eng));
}

}  // namespace troupe
