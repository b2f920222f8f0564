// --fault-inject (test-only): parsing, and that unset means off.
#include <gtest/gtest.h>

#include "config/option_table.h"

namespace troupe {
namespace {

status set_fault(troupe_options& o, const std::string& v) {
  for (const auto& d : option_table())
    if (d.name == "fault-inject") {
      EXPECT_EQ(d.group, "testing");
      return d.set(o, v);
    }
  ADD_FAILURE() << "no --fault-inject option";
  return make_error(errc::internal, "missing");
}

TEST(fault_inject, off_by_default) {
  troupe_options o;
  EXPECT_FALSE(o.engine.fault_inject.any());
  ASSERT_TRUE(set_fault(o, "").ok());
  EXPECT_FALSE(o.engine.fault_inject.any());
}

TEST(fault_inject, parses_every_key) {
  troupe_options o;
  ASSERT_TRUE(set_fault(o, "fail_step=5,fail_steps=2,slow_ms=200,refuse_blocks_after=7,refuse_blocks_count=-1").ok());
  const auto& f = o.engine.fault_inject;
  EXPECT_EQ(f.fail_step, 5);
  EXPECT_EQ(f.fail_steps, 2);
  EXPECT_EQ(f.slow_ms, 200);
  EXPECT_EQ(f.refuse_blocks_after, 7);
  EXPECT_EQ(f.refuse_blocks_count, -1);
  EXPECT_TRUE(f.any());
}

TEST(fault_inject, rejects_bad_specs) {
  troupe_options o;
  EXPECT_FALSE(set_fault(o, "explode=1").ok());
  EXPECT_FALSE(set_fault(o, "fail_step").ok());
  EXPECT_FALSE(set_fault(o, "fail_step=abc").ok());
  EXPECT_FALSE(set_fault(o, "slow_ms=-1").ok());
  EXPECT_FALSE(set_fault(o, "refuse_blocks_count=0").ok());
  EXPECT_FALSE(o.engine.fault_inject.any());  // a rejected spec leaves the options unchanged
}

}  // namespace
}  // namespace troupe
