// The engine-side request registry: a request id names one in-flight request; a duplicate is refused
// with invalid_argument and leaves the first cancellable; an ended request frees its id.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/request_registry.h"
#include "support/wait_until.h"

namespace troupe {
namespace {

// A sink that only counts the cancels it receives; the test ends requests through the callbacks.
sink_actor::behavior_type counting_sink(sink_actor::pointer, std::shared_ptr<std::atomic<int>> cancels) {
  return {
      [](event_atom, const generation_event&) {},
      [](fail_atom, const error&) {},
      [](events_atom, const event_batch&) {},
      [cancels](cancel_atom) { cancels->fetch_add(1); },
      [cancels](cancel_atom, const std::string&) { cancels->fetch_add(1); },
  };
}

struct spawned {
  std::shared_ptr<std::atomic<int>> cancels = std::make_shared<std::atomic<int>>(0);
  event_callback on_event;
  error_callback on_error;
  sink_actor sink;
};

struct registry_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  request_registry reg;
  std::vector<std::shared_ptr<spawned>> sinks;  // every sink spawned, in order

  registry_fixture() {
    cfg.add_message_types<caf::id_block::troupe_api>();
    cfg.add_message_types<caf::id_block::troupe>();
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  ~registry_fixture() {
    for (auto& s : sinks) caf::anon_send_exit(s->sink, caf::exit_reason::user_shutdown);
    reg.clear();
    sinks.clear();
  }

  // Submits `id`; returns the refusal, if any.
  std::optional<error> submit(const std::string& id) {
    auto refused = std::make_shared<std::optional<error>>();
    generation_request r;
    r.request_id = id;
    r.prompt_ids = {1, 2, 3};
    reg.submit(
        r, [](const generation_event&) {}, [refused](const error& e) { *refused = e; },
        [this](generation_request, event_callback ev, error_callback err) {
          auto s = std::make_shared<spawned>();
          s->on_event = std::move(ev);
          s->on_error = std::move(err);
          s->sink = sys->spawn(counting_sink, s->cancels);
          sinks.push_back(s);
          return s->sink;
        });
    return *refused;
  }
};

TEST(request_registry, a_duplicate_id_is_refused_and_the_first_stays_cancellable) {
  registry_fixture f;
  ASSERT_FALSE(f.submit("dup"));
  auto refusal = f.submit("dup");
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->code, errc::invalid_argument);
  EXPECT_NE(refusal->message.find("duplicate request id 'dup'"), std::string::npos) << refusal->message;
  ASSERT_EQ(f.sinks.size(), 1u);  // the duplicate spawned nothing
  EXPECT_EQ(f.reg.size(), 1u);
  f.reg.cancel("dup");
  EXPECT_TRUE(testing::wait_until([&] { return f.sinks[0]->cancels->load() == 1; }));
}

TEST(request_registry, an_ended_request_frees_its_id) {
  registry_fixture f;
  ASSERT_FALSE(f.submit("a"));
  ASSERT_FALSE(f.submit("b"));
  generation_event last;
  last.finish = finish_reason::length;
  f.sinks[0]->on_event(last);                                  // "a" finished
  f.sinks[1]->on_error(error{errc::device_error, "step failed"});  // "b" failed
  EXPECT_TRUE(f.reg.empty());
  ASSERT_FALSE(f.submit("a"));
  ASSERT_FALSE(f.submit("b"));
  EXPECT_EQ(f.sinks.size(), 4u);
  f.reg.cancel("a");  // reaches the new "a", not the ended one
  EXPECT_TRUE(testing::wait_until([&] { return f.sinks[2]->cancels->load() == 1; }));
  EXPECT_EQ(f.sinks[0]->cancels->load(), 0);
}

TEST(request_registry, a_request_with_n_choices_ends_with_its_last_choice) {
  registry_fixture f;
  auto refused = std::make_shared<std::optional<error>>();
  generation_request r;
  r.request_id = "n3";
  r.n = 3;
  std::vector<std::shared_ptr<spawned>>& sinks = f.sinks;
  f.reg.submit(
      r, [](const generation_event&) {}, [](const error&) {},
      [&](generation_request, event_callback ev, error_callback err) {
        auto s = std::make_shared<spawned>();
        s->on_event = std::move(ev);
        s->on_error = std::move(err);
        s->sink = f.sys->spawn(counting_sink, s->cancels);
        sinks.push_back(s);
        return s->sink;
      });
  generation_event last;
  last.finish = finish_reason::stop;
  sinks[0]->on_event(last);
  sinks[0]->on_event(last);
  EXPECT_EQ(f.reg.size(), 1u);
  EXPECT_TRUE(f.submit("n3").has_value());  // still in flight: refused
  sinks[0]->on_event(last);
  EXPECT_TRUE(f.reg.empty());
}

TEST(request_registry, unnamed_requests_get_distinct_ids) {
  registry_fixture f;
  ASSERT_FALSE(f.submit(""));
  ASSERT_FALSE(f.submit(""));
  EXPECT_EQ(f.reg.size(), 2u);
}

}  // namespace
}  // namespace troupe
