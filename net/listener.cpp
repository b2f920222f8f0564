// listener (see listener.h): the acceptor, the I/O threads and graceful stop. Each accepted socket
// gets its own strand and an http_session; connections beyond max_connections get a 503 and close.
#include "net/listener.h"

#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "config/log.h"
#include "net/http_session.h"

namespace troupe {

struct listener::impl {
  // Declared first: destroyed last, after everything that holds its executors.
  boost::asio::io_context ioc;
  std::shared_ptr<server_context> ctx;
  tcp::acceptor acceptor{ioc};
  boost::asio::steady_timer accept_retry{ioc};  // after an accept error (EMFILE...), pause a bit
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool running = false;

  void do_accept() {
    acceptor.async_accept(boost::asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      on_accept(ec, std::move(socket));
    });
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == boost::asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      auto session = std::make_shared<http_session>(std::move(socket), ctx);
      if (ctx->num_connections.load() > ctx->opts.server.max_connections) {
        http_response r = ctx->routes.reject(api_error{503, "too many connections", "service_unavailable_error",
                                                       {}, "max_connections"});
        r.headers.emplace_back("Retry-After", "1");
        session->reject(r);
      } else {
        session->run();
      }
    } else {
      logger("net")->warn("accept failed: {}", ec.message());
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](beast::error_code e) {
        if (!e && acceptor.is_open()) do_accept();
      });
      return;
    }
    do_accept();
  }
};

listener::listener(engine& eng, listener_options opts, std::shared_ptr<const text_codec> codec)
    : impl_(std::make_unique<impl>()) {
  impl_->ctx = std::make_shared<server_context>(eng, std::move(opts), std::move(codec));
}

listener::~listener() {
  if (impl_->running) stop(std::chrono::milliseconds(0));
}

status listener::start() {
  impl& m = *impl_;
  const server_options& so = m.ctx->opts.server;
  beast::error_code ec;
  auto address = boost::asio::ip::make_address(so.host, ec);
  if (ec) return make_error(errc::invalid_argument, "bad listen address '" + so.host + "': " + ec.message());
  tcp::endpoint endpoint(address, so.port);
  m.acceptor.open(endpoint.protocol(), ec);
  if (!ec) m.acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(endpoint, ec);
  if (!ec) m.acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return make_error(errc::io_error, "cannot listen on " + so.host + ":" + std::to_string(so.port) + ": " +
                                          ec.message());
  }
  if (!so.extensions.empty() || m.ctx->opts.extension_set) {
    auto host = extension_host::start(so.extensions, m.ctx->opts.extension_set.get());
    if (!host) return host.err();
    m.ctx->ext = std::move(*host);
  }
  m.port = m.acceptor.local_endpoint().port();
  m.work.emplace(m.ioc.get_executor());
  m.do_accept();
  const int32_t n = std::max<int32_t>(1, m.ctx->opts.num_threads);
  for (int32_t i = 0; i < n; ++i) m.threads.emplace_back([&m] { m.ioc.run(); });
  m.running = true;
  m.ctx->state.started = true;
  logger("net")->info("listening on {}", url());
  return ok_status();
}

uint16_t listener::port() const { return impl_->port; }

std::string listener::url() const {
  const std::string& host = impl_->ctx->opts.server.host;
  const bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(impl_->port);
}

void listener::stop(std::chrono::milliseconds drain_timeout) {
  impl& m = *impl_;
  if (!m.running) return;
  m.running = false;
  m.ctx->state.draining = true;
  boost::asio::post(m.ioc, [&m] {
    beast::error_code ec;
    m.acceptor.close(ec);
    m.accept_retry.cancel();
  });
  // In-flight requests finish (or are cancelled at the deadline) and their sessions answer.
  m.ctx->eng.drain(drain_timeout);
  m.ctx->shutdown_all();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (m.ctx->num_connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  m.work.reset();
  m.ioc.stop();
  for (auto& t : m.threads) t.join();
  m.threads.clear();
  m.ctx->blocking.join();
  if (m.ctx->ext) m.ctx->ext->stop();  // here, on a thread that is none of the extension actors
  logger("net")->info("listener stopped");
}

void listener::on_first_request_done(std::function<void()> fn) { impl_->ctx->on_first_request_done = std::move(fn); }

server_metrics& listener::metrics() { return impl_->ctx->metrics; }

}  // namespace troupe
