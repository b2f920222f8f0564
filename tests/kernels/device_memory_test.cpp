// device_arena: one allocation per arena, aligned bump allocation, out_of_memory when full.
#include "gpu_test_util.h"
#include "kernels/device_memory.h"

namespace troupe {
namespace {

TEST(device_arena, aligns_counts_and_refuses_overflow) {
  TROUPE_REQUIRE_GPU();
  const uint64_t before = device_allocation_count();
  auto a = device_arena::create("test", 4096);
  ASSERT_TRUE(a.ok()) << a.err().to_string();
  EXPECT_EQ(device_allocation_count(), before + 1);
  auto p1 = a->allocate(10, 256);
  auto p2 = a->allocate(100, 512);
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*p2) % 512, 0u);
  EXPECT_GE(static_cast<char*>(*p2) - static_cast<char*>(*p1), 10);
  auto big = a->allocate(4096);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.err().code, errc::out_of_memory);
  EXPECT_FALSE(a->allocate(8, 3).ok());
  EXPECT_EQ(device_allocation_count(), before + 1);  // sub-allocation never calls cudaMalloc
}

TEST(device_arena, huge_request_is_an_error_not_a_crash) {
  TROUPE_REQUIRE_GPU();
  auto a = device_arena::create("huge", uint64_t{1} << 50);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.err().code, errc::out_of_memory);
  auto b = device_arena::create("after", 1024);  // the device still works afterwards
  EXPECT_TRUE(b.ok());
}

}  // namespace
}  // namespace troupe
