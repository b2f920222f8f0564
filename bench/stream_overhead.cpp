// What the HTTP + SSE path costs per streamed token compared with the engine facade alone: the
// same requests (same model, prompt ids, greedy, ignore_eos) run through engine::submit, then
// through the in-process listener over loopback with a plain socket client reading the SSE stream.
// Besides time it counts heap allocations (a counting global operator new) per streamed token: a
// number the machine's load does not blur, unlike the µs of a loaded 2-core box.
//   bench_stream_overhead [--model PATH] [--requests N] [--tokens M] [--concurrency C] [--reps R]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "actors/engine.h"
#include "net/listener.h"
#include "bench/counting_allocator.h"

namespace {

using namespace troupe;
using clock_type = std::chrono::steady_clock;

struct bench_args {
  std::string model;
  int requests = 16;
  int tokens = 64;
  int concurrency = 4;
  int reps = 3;
};

std::vector<int32_t> prompt_ids(int i) {
  std::vector<int32_t> p;
  for (int k = 0; k < 24; ++k) p.push_back(10 + (i * 31 + k * 7) % 400);  // inside any vocabulary
  return p;
}

// Runs `requests` requests, `concurrency` at a time, through fn(i) (which blocks until done and
// returns the tokens it received). Returns the wall time in seconds; `allocations` gets the heap
// allocations made meanwhile.
template <class F>
double run_batch(const bench_args& a, F fn, int64_t& tokens_seen, uint64_t& allocations) {
  const uint64_t allocs0 = bench::heap_allocations();
  std::atomic<int> next{0};
  std::atomic<int64_t> total{0};
  const auto t0 = clock_type::now();
  std::vector<std::thread> ts;
  for (int c = 0; c < a.concurrency; ++c)
    ts.emplace_back([&] {
      for (int i = next++; i < a.requests; i = next++) total += fn(i);
    });
  for (auto& t : ts) t.join();
  tokens_seen = total;
  allocations = bench::heap_allocations() - allocs0;
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

int64_t via_engine(engine& e, const bench_args& a, int i) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int64_t n = 0;
  generation_request r;
  r.prompt_ids = prompt_ids(i);
  r.params.temperature = 0;
  r.params.max_tokens = a.tokens;
  r.params.ignore_eos = true;
  e.submit(
      r,
      [&](const generation_event& ev) {
        std::lock_guard<std::mutex> l(mu);
        n += static_cast<int64_t>(ev.token_ids.size());
        if (ev.finish != finish_reason::none) done = true, cv.notify_all();
      },
      [&](const error&) {
        std::lock_guard<std::mutex> l(mu);
        done = true;
        cv.notify_all();
      });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  return n;
}

int64_t via_http(uint16_t port, const bench_args& a, int i) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return 0;
  std::string ids;
  for (int32_t t : prompt_ids(i)) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  const std::string body = "{\"prompt\": [" + ids + "], \"max_tokens\": " + std::to_string(a.tokens) +
                           ", \"temperature\": 0, \"ignore_eos\": true, \"stream\": true}";
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)!::write(fd, req.data(), req.size());
  std::string all;
  all.reserve(static_cast<size_t>(a.tokens) * 512 + 4096);  // the client's own growth is not the server's cost
  char buf[8192];
  ssize_t k;
  while ((k = ::read(fd, buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(k));
  ::close(fd);
  int64_t events = 0;
  for (size_t pos = 0; (pos = all.find("data: {", pos)) != std::string::npos; ++pos) ++events;
  return events;  // one SSE event per token
}

}  // namespace

int main(int argc, char** argv) {
  bench_args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--model") a.model = argv[i + 1];
    else if (k == "--requests") a.requests = std::atoi(argv[i + 1]);
    else if (k == "--tokens") a.tokens = std::atoi(argv[i + 1]);
    else if (k == "--concurrency") a.concurrency = std::atoi(argv[i + 1]);
    else if (k == "--reps") a.reps = std::max(1, std::atoi(argv[i + 1]));
  }
  troupe_options o;
  o.engine.model.model = a.model;
  o.engine.cache_max_entry_count = 512;
  o.engine.session_len = 2048;
  o.engine.enable_prefix_caching = false;  // both runs compute the same work
  o.log_level = "warn";
  auto eng = engine::start(o);
  if (!eng) {
    std::fprintf(stderr, "error: %s\n", eng.err().message.c_str());
    return 1;
  }
  engine& e = **eng;
  listener_options lo;
  lo.server.port = 0;
  listener http(e, lo, make_engine_codec(e));
  if (!http.start()) return 1;
  int64_t t_engine = 0, t_http = 0;
  via_engine(e, a, 0);  // warm-up
  std::vector<double> engine_s, http_s, engine_a, http_a;
  for (int rep = 0; rep < a.reps; ++rep) {
    uint64_t allocs = 0;
    engine_s.push_back(run_batch(a, [&](int i) { return via_engine(e, a, i); }, t_engine, allocs));
    engine_a.push_back(static_cast<double>(allocs) / static_cast<double>(std::max<int64_t>(1, t_engine)));
    http_s.push_back(run_batch(a, [&](int i) { return via_http(http.port(), a, i); }, t_http, allocs));
    http_a.push_back(static_cast<double>(allocs) / static_cast<double>(std::max<int64_t>(1, t_http)));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double te = median(engine_s), th = median(http_s);
  const double ae = median(engine_a), ah = median(http_a);
  std::printf("%d requests x %d tokens, concurrency %d, model %s (median of %d)\n", a.requests, a.tokens,
              a.concurrency, e.model().name.c_str(), a.reps);
  std::printf("  engine facade : %8.3f s  %8.1f tok/s  %8.1f us/token  (%lld tokens)\n", te, t_engine / te,
              te * 1e6 / static_cast<double>(t_engine), static_cast<long long>(t_engine));
  std::printf("  HTTP + SSE    : %8.3f s  %8.1f tok/s  %8.1f us/token  (%lld tokens)\n", th, t_http / th,
              th * 1e6 / static_cast<double>(t_http), static_cast<long long>(t_http));
  std::printf("  HTTP path adds %.1f us per streamed token (%.1f%%)\n",
              (th / static_cast<double>(t_http) - te / static_cast<double>(t_engine)) * 1e6,
              100.0 * (th / te - 1.0));
  std::printf("  allocations per streamed token: engine facade %.1f, HTTP + SSE %.1f (HTTP adds %.1f)\n", ae, ah,
              ah - ae);
  http.stop(std::chrono::milliseconds(1000));
  return 0;
}
