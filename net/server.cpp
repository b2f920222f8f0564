// run_server (see server.h): start the listener, log its URL, wait for SIGINT/SIGTERM on a private
// io_context (signal_set catches the signal whichever thread it hits), then drain and stop. After
// the first request completes, logs measured memory against the plan.
#include "net/server.h"

#include <csignal>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "config/log.h"
#include "runtime/host_memory.h"

namespace troupe {

namespace {

void log_memory_vs_plan(const memory_plan& plan, const std::vector<backend_memory>& measured) {
  if (plan.ranks.empty()) return;  // a cluster router holds no model
  uint64_t weights = 0, reserve = 0, kv = 0;
  for (const rank_plan& r : plan.ranks) weights += r.weights_bytes, reserve += r.reserve_bytes, kv += r.kv_bytes;
  // On the CPU the KV pool is committed page by page as blocks are first used, so resident memory
  // is weights + reserve + the blocks touched so far, never more than the planned total.
  logger("net")->info("first request done: process RSS {} against the plan: weights {} + reserve {} + KV {} "
                      "({} rank(s) on {}{})",
                      format_bytes(process_rss_bytes()), format_bytes(weights), format_bytes(reserve), format_bytes(kv),
                      plan.ranks.size(), plan.device, plan.device == "cpu" ? ", KV committed on use" : "");
  for (size_t r = 0; r < measured.size() && r < plan.ranks.size(); ++r)
    logger("net")->info("rank {}: weights {} (planned {}), KV pool {} (planned {})", r,
                        format_bytes(measured[r].weights_bytes), format_bytes(plan.ranks[r].weights_bytes),
                        format_bytes(measured[r].kv_bytes), format_bytes(plan.ranks[r].kv_bytes));
}

}  // namespace

int run_server(engine& eng, const server_options& opts) {
  listener_options lo;
  lo.server = opts;
  lo.num_threads = static_cast<int32_t>(std::clamp(std::thread::hardware_concurrency(), 2u, 4u));
  return run_server(eng, lo);
}

int run_server(engine& eng, const listener_options& opts) {
  auto log = logger("net");
  boost::asio::io_context signals_ioc;
  boost::asio::signal_set signals(signals_ioc, SIGINT, SIGTERM);  // before the I/O threads start
  listener server(eng, opts, make_engine_codec(eng));
  const memory_plan plan = eng.plan();
  server.on_first_request_done([plan, &eng] { log_memory_vs_plan(plan, eng.rank_memory()); });
  status st = server.start();
  if (!st.ok()) {
    log->error("{}", st.err().to_string());
    return 1;
  }
  log->info("troupe is serving {} at {}/v1 (Ctrl-C to stop)", eng.model().name, server.url());
  int received = 0;
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (!ec) received = sig;
  });
  signals_ioc.run();
  log->info("received {}: draining for at most {} s", received == SIGINT ? "SIGINT" : "SIGTERM",
            opts.server.drain_timeout_s);
  server.stop(std::chrono::milliseconds(static_cast<int64_t>(opts.server.drain_timeout_s * 1000.0)));
  return 0;
}

}  // namespace troupe
