// The CAF scheduler settings every troupe actor system starts with: moderate polling (50 us sleeps
// a message cannot cut short) is off unless --actor-moderate-polls asks for it, and the option
// parses strictly.
#include <gtest/gtest.h>

#include <cstddef>

#include <caf/actor_system_config.hpp>

#include "actors/actor_system_setup.h"
#include "support/cli_parse.h"

namespace troupe {
namespace {

size_t moderate_polls(const caf::actor_system_config& cfg) {
  return caf::get_or(cfg, "work-stealing.moderate-poll-attempts", size_t{12345});
}

TEST(actor_system_setup, moderate_polling_is_off_by_default) {
  caf::actor_system_config cfg;
  EXPECT_EQ(moderate_polls(cfg), 12345u) << "unset before";
  configure_actor_scheduler(cfg, engine_options{});
  EXPECT_EQ(moderate_polls(cfg), 0u);
}

TEST(actor_system_setup, the_option_sets_cafs_moderate_poll_attempts) {
  auto r = testing::parse({"serve", "--actor-moderate-polls", "500"});
  ASSERT_EQ(r.command, "serve") << r.output;
  EXPECT_EQ(r.options.engine.actor_moderate_polls, 500);
  caf::actor_system_config cfg;
  configure_actor_scheduler(cfg, r.options.engine);
  EXPECT_EQ(moderate_polls(cfg), 500u);
  for (const char* bad : {"-1", "abc", "1.5"}) {
    auto b = testing::parse({"serve", "--actor-moderate-polls", bad});
    EXPECT_TRUE(b.command.empty()) << bad;
    EXPECT_NE(b.output.find("--actor-moderate-polls"), std::string::npos) << b.output;
  }
}

}  // namespace
}  // namespace troupe
