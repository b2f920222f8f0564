// The extension host with extensions registered in code: filter chains (rewrite, reject), a
// crashing filter (500, respawned before the answer), a silent filter (503 after its timeout),
// routes (reply, 504), observers (every event), unknown names and duplicate routes.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <stdexcept>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/extension_host.h"
#include "troupe/extension.h"

namespace troupe {
namespace {

using namespace std::chrono_literals;

filter_verdict run_filter(extension_host& host, filter_request req) {
  std::promise<filter_verdict> p;
  auto f = p.get_future();
  host.filter(std::move(req), [&p](filter_verdict v) { p.set_value(std::move(v)); });
  EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
  return f.get();
}

route_result run_route(extension_host& host, const std::string& path) {
  std::promise<route_result> p;
  auto f = p.get_future();
  const extension_route* r = host.find_route(path);
  EXPECT_NE(r, nullptr);
  host.route(*r, route_request{http_metadata{"GET", path, {}, {}}, "body"}, [&p](route_result v) {
    p.set_value(std::move(v));
  });
  EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
  return f.get();
}

// Caps max_tokens at 4; crashes on prompt token 666; never answers on prompt token 777.
request_filter_actor::behavior_type capping_filter(request_filter_actor::pointer self) {
  return {[self](filter_atom, const filter_request& r) {
    auto rp = self->make_response_promise<filter_verdict>();
    if (!r.request.prompt_ids.empty() && r.request.prompt_ids[0] == 666) throw std::runtime_error("boom");
    if (!r.request.prompt_ids.empty() && r.request.prompt_ids[0] == 777) return rp;  // never delivered
    sampling_params p = r.request.params;
    p.max_tokens = std::min(p.max_tokens, 4);
    rp.deliver(filter_verdict::accept_with(p));
    return rp;
  }};
}

std::atomic<int> num_seen_by_second{0};

request_filter_actor::behavior_type second_filter() {
  return {[](filter_atom, const filter_request& r) -> filter_verdict {
    ++num_seen_by_second;
    if (r.request.params.max_tokens != 4) return filter_verdict::reject(500, "did not see the rewrite");
    if (r.http.api_key == "blocked") return filter_verdict::reject(429, "slow down", "rate_limited");
    return filter_verdict::accept_as_is();
  }};
}

route_handler_actor::behavior_type echo_route() {
  return {[](route_atom, const route_request& r) -> route_response {
    return route_response{200, "text/plain", r.http.path + ":" + r.body};
  }};
}

route_handler_actor::behavior_type silent_route(route_handler_actor::pointer self) {
  return {[self](route_atom, const route_request&) { return self->make_response_promise<route_response>(); }};
}

std::atomic<int> num_events{0};

stream_observer_actor::behavior_type counting_observer() {
  return {[](begin_atom, const request_info&) { ++num_events; },
          [](event_atom, const generation_event&) { ++num_events; },
          [](fail_atom, const std::string&, const error&) { ++num_events; }};
}

std::shared_ptr<extension_host> make_host() {
  extensions ex;
  ex.add_filter("capping", [](caf::actor_system& s) { return s.spawn(capping_filter); }, 300ms)
      .add_filter("second", [](caf::actor_system& s) { return s.spawn(second_filter); })
      .add_route("echo", "GET", "/echo", [](caf::actor_system& s) { return s.spawn(echo_route); })
      .add_route("silent", "*", "/silent", [](caf::actor_system& s) { return s.spawn(silent_route); }, 200ms)
      .add_observer("count", [](caf::actor_system& s) { return s.spawn(counting_observer); });
  auto host = extension_host::start({}, &ex);
  EXPECT_TRUE(host.ok());
  return host.ok() ? *host : nullptr;
}

filter_request request_with(int32_t first_token, std::string key = "k") {
  filter_request r;
  r.request.prompt_ids = {first_token, 2, 3};
  r.request.params.max_tokens = 50;
  r.http.api_key = std::move(key);
  return r;
}

TEST(extension_host, filter_chain_passes_rewritten_params_on) {
  auto host = make_host();
  num_seen_by_second = 0;
  filter_verdict v = run_filter(*host, request_with(1));
  EXPECT_TRUE(v.accept);
  EXPECT_TRUE(v.rewrite);
  EXPECT_EQ(v.params.max_tokens, 4);  // the first filter's rewrite, seen and kept by the second
  EXPECT_EQ(num_seen_by_second.load(), 1);
}

TEST(extension_host, rejection_carries_status_and_code) {
  auto host = make_host();
  filter_verdict v = run_filter(*host, request_with(1, "blocked"));
  EXPECT_FALSE(v.accept);
  EXPECT_EQ(v.status, 429);
  EXPECT_EQ(v.code, "rate_limited");
}

TEST(extension_host, crashing_filter_fails_one_call_and_is_respawned) {
  auto host = make_host();
  num_seen_by_second = 0;
  filter_verdict v = run_filter(*host, request_with(666));
  EXPECT_FALSE(v.accept);
  EXPECT_EQ(v.status, 500);
  EXPECT_EQ(v.code, "filter_failed");
  EXPECT_NE(v.message.find("capping"), std::string::npos);
  EXPECT_EQ(num_seen_by_second.load(), 0);  // the chain stopped there
  // The successor is in place before the failure was answered: the next call succeeds at once.
  EXPECT_TRUE(run_filter(*host, request_with(1)).accept);
}

TEST(extension_host, silent_filter_times_out_with_503) {
  auto host = make_host();
  const auto t0 = std::chrono::steady_clock::now();
  filter_verdict v = run_filter(*host, request_with(777));
  EXPECT_FALSE(v.accept);
  EXPECT_EQ(v.status, 503);
  EXPECT_EQ(v.code, "filter_timeout");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);
  EXPECT_TRUE(run_filter(*host, request_with(1)).accept);
}

TEST(extension_host, routes_answer_or_time_out_with_504) {
  auto host = make_host();
  EXPECT_EQ(host->find_route("/nothing"), nullptr);
  route_result answered = run_route(*host, "/echo");
  ASSERT_TRUE(std::holds_alternative<route_response>(answered));
  const auto& r = std::get<route_response>(answered);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain");
  EXPECT_EQ(r.body, "/echo:body");
  // The host reports a failure as a value (status, code, message); the listener (net/) writes the
  // OpenAI error body, so no JSON is made here.
  route_result late = run_route(*host, "/silent");
  ASSERT_TRUE(std::holds_alternative<extension_failure>(late));
  const auto& f = std::get<extension_failure>(late);
  EXPECT_EQ(f.status, 504);
  EXPECT_EQ(f.code, "route_timeout");
  EXPECT_NE(f.message.find("silent"), std::string::npos);
}

TEST(extension_host, observers_see_every_notification) {
  auto host = make_host();
  num_events = 0;
  host->observe_begin(request_info{"r1", {}, 3, 1, {}});
  generation_event ev;
  ev.request_id = "r1";
  host->observe_event(ev);
  host->observe_failure("r1", error{errc::cancelled, "gone"});
  host->stop();  // waits for the observer to drain its mailbox
  EXPECT_EQ(num_events.load(), 3);
  // After stop, calls answer at once and notifications are dropped.
  EXPECT_EQ(run_filter(*host, request_with(1)).status, 503);
  host->observe_event(ev);
}

TEST(extension_host, unknown_names_and_duplicate_routes_are_errors) {
  auto unknown = extension_host::start({"no_such_extension"}, nullptr);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.err().message.find("no_such_extension"), std::string::npos);
  extensions ex;
  ex.add_route("a", "GET", "/x", [](caf::actor_system& s) { return s.spawn(echo_route); });
  ex.add_route("b", "GET", "/x", [](caf::actor_system& s) { return s.spawn(echo_route); });
  auto dup = extension_host::start({}, &ex);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.err().message.find("/x"), std::string::npos);
}

}  // namespace
}  // namespace troupe
