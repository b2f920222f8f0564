// run_server: fails cleanly when it cannot listen; on SIGTERM drains the engine and returns 0.
#include "net/server.h"
#include "runtime/host_memory.h"

#include <gtest/gtest.h>

#include <csignal>
#include <future>

#include "fake_engine.h"
#include "support/wait_until.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

TEST(run_server, returns_1_when_it_cannot_listen) {
  test::fake_engine eng;
  server_options o;
  o.host = "not-an-address";
  EXPECT_EQ(run_server(eng, o), 1);
}

TEST(run_server, drains_and_returns_0_on_sigterm) {
  test::fake_engine eng;
  server_options o;
  o.port = 0;
  o.drain_timeout_s = 0.1;
  auto done = std::async(std::launch::async, [&] { return run_server(eng, o); });
  // The signal handler is installed before the listener reads the plan; a signal that comes before
  // run_server waits for it is kept by the signal_set.
  ASSERT_TRUE(testing::wait_until([&] { return eng.plan_calls.load() > 0; }));
  std::raise(SIGTERM);
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(done.get(), 0);
  EXPECT_TRUE(eng.drained());
}

TEST(process_rss_bytes, is_positive_on_linux) { EXPECT_GT(process_rss_bytes(), 0u); }

}  // namespace
}  // namespace troupe
