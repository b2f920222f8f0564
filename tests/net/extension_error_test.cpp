// extension_error (net/api_error.h): how a filter's rejection or the extension host's failure
// becomes an OpenAI error response. The host (actors/) reports only status, code and message.
#include <gtest/gtest.h>

#include "net/api_error.h"

namespace troupe {
namespace {

TEST(extension_error, the_type_follows_the_status) {
  EXPECT_EQ(extension_error(429, "slow down", "rate_limited").type, "rate_limit_error");
  EXPECT_EQ(extension_error(401, "who", "").type, "authentication_error");
  EXPECT_EQ(extension_error(403, "no", "").type, "permission_error");
  EXPECT_EQ(extension_error(503, "later", "route_failed").type, "service_unavailable_error");
  EXPECT_EQ(extension_error(504, "late", "route_timeout").type, "timeout_error");
  EXPECT_EQ(extension_error(500, "crashed", "route_failed").type, "internal_error");
  EXPECT_EQ(extension_error(400, "bad", "").type, "invalid_request_error");
}

TEST(extension_error, retry_after_only_for_429_and_503) {
  EXPECT_EQ(extension_error(429, "m", "").retry_after_s, 1);
  EXPECT_EQ(extension_error(503, "m", "").retry_after_s, 1);
  EXPECT_EQ(extension_error(504, "m", "").retry_after_s, 0);
  EXPECT_EQ(extension_error(500, "m", "").retry_after_s, 0);
}

TEST(extension_error, the_body_is_an_openai_error_object) {
  const api_error e = extension_error(504, "route 'silent' did not answer in time", "route_timeout");
  EXPECT_EQ(e.status, 504);
  const auto j = nlohmann::json::parse(api_error_body(e));
  EXPECT_EQ(j["error"]["message"], "route 'silent' did not answer in time");
  EXPECT_EQ(j["error"]["type"], "timeout_error");
  EXPECT_EQ(j["error"]["code"], "route_timeout");
  EXPECT_TRUE(j["error"]["param"].is_null());
}

}  // namespace
}  // namespace troupe
