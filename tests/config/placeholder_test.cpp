#include <gtest/gtest.h>
#include "config/error.h"
TEST(error, names_codes) { EXPECT_STREQ(troupe::errc_name(troupe::errc::overloaded), "overloaded"); }
