// The listener: an Asio acceptor on N threads serving HTTP (OpenAI API, /metrics, health) and
// WebSocket connections over the engine facade. No Asio or Beast types leak from this header.
// Lifecycle: construct, start() (binds; port 0 picks a free port), stop(drain) once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "actors/engine.h"
#include "config/error.h"
#include "config/options.h"
#include "net/metrics.h"
#include "net/text_codec.h"

namespace troupe {

class extensions;  // <troupe/extension.h>

struct listener_options {
  server_options server;
  int32_t num_threads = 2;           // Asio I/O threads
  int32_t ws_max_generations = 16;   // concurrent generations per WebSocket connection
  double health_stall_s = 60.0;      // /health fails when busy and no step finished for this long
  // Custom actors registered in code; they run after those named in server.extensions.
  std::shared_ptr<const extensions> extension_set;
};

class listener {
 public:
  // `codec` may be null (token-id prompts only); the engine must outlive the listener.
  listener(engine& eng, listener_options opts, std::shared_ptr<const text_codec> codec);
  ~listener();  // stops without draining if still running
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  // Binds host:port, starts the I/O threads and accepting. Errors: bad address, port in use.
  status start();
  uint16_t port() const;  // the bound port (after start)
  std::string url() const;

  // Graceful stop: stop accepting, /ready -> 503, engine.drain(drain_timeout) (in-flight requests
  // finish or are cancelled), close every connection, join the threads. Call from a non-I/O thread.
  void stop(std::chrono::milliseconds drain_timeout);

  // Called once, on an I/O thread, when the first generation request completes.
  void on_first_request_done(std::function<void()> fn);
  server_metrics& metrics();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe
