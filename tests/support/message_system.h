// A CAF actor system with troupe's message types registered, for tests that check what crosses
// nodes: round_trip() sends a value through CAF's binary serializer and back, as a cluster link does.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include <caf/all.hpp>

#include "actors/messages.h"

namespace troupe::testing {

struct message_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  message_system() {
    cfg.add_message_types<caf::id_block::troupe_api>();
    cfg.add_message_types<caf::id_block::troupe>();
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  // Serializes `in` as a message and reads it back into `back`; the first error, if any.
  template <class T>
  caf::error round_trip(const T& in, caf::message& back) {
    std::vector<char> buf;
    caf::binary_serializer sink{*sys, buf};
    if (auto e = sink(caf::make_message(in))) return e;
    caf::binary_deserializer source{*sys, buf};
    return source(back);
  }
  // The value after the trip (a default T, with a test failure, when it did not survive).
  template <class T>
  T round_trip(const T& in) {
    caf::message back;
    EXPECT_FALSE(round_trip(in, back));
    EXPECT_TRUE(back.match_elements<T>());
    return back.match_elements<T>() ? back.get_as<T>(0) : T{};
  }
};

}  // namespace troupe::testing
