#include "engine/validate.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

using ::testing::HasSubstr;

TEST(ValidateTest, MetricNames) {
  EXPECT_TRUE(ValidateMetricName("events_stored_total").ok());
  EXPECT_TRUE(ValidateMetricName("a:b_c9").ok());
  EXPECT_TRUE(ValidateMetricName(":colon_first").ok());
  EXPECT_TRUE(ValidateMetricName("_x").ok());
  EXPECT_FALSE(ValidateMetricName("").ok());
  EXPECT_FALSE(ValidateMetricName("9lives").ok());
  EXPECT_FALSE(ValidateMetricName("has-dash").ok());
  EXPECT_FALSE(ValidateMetricName("has space").ok());
  EXPECT_FALSE(ValidateMetricName("caf\xc3\xa9").ok());
  absl::Status s = ValidateMetricName("__internal");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("reserved"));
  EXPECT_THAT(ValidateMetricName("bad.name").message(), HasSubstr("\"bad.name\""));
}

TEST(ValidateTest, LabelNames) {
  EXPECT_TRUE(ValidateLabelName("event_type").ok());
  EXPECT_TRUE(ValidateLabelName("_a1").ok());
  EXPECT_FALSE(ValidateLabelName("a:b").ok());  // colons are for metric names only
  EXPECT_FALSE(ValidateLabelName("1a").ok());
  EXPECT_FALSE(ValidateLabelName("").ok());
  EXPECT_THAT(ValidateLabelName("__name__").message(), HasSubstr("reserved"));
}

TEST(ValidateTest, ErrorMessageEscapesControlBytes) {
  absl::Status s = ValidateLabelName("a\nb");
  EXPECT_THAT(s.message(), HasSubstr("a\\x0ab"));
}

TEST(ValidateTest, Utf8) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_TRUE(IsValidUtf8(std::string("nul\0inside", 10)));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong, 3 bytes
  EXPECT_FALSE(IsValidUtf8("\xf0\x80\x80\xaf"));  // overlong, 4 bytes
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // UTF-16 surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
}

TEST(ValidateTest, Labels) {
  EXPECT_TRUE(ValidateLabels("m", {"a", "b"}, {{"c", "v"}}).ok());
  absl::Status dup = ValidateLabels("m", {"a", "a"}, {});
  EXPECT_THAT(dup.message(), HasSubstr("duplicate label name \"a\""));
  EXPECT_THAT(ValidateLabels("m", {"a"}, {{"a", "x"}}).message(), HasSubstr("duplicate"));
  EXPECT_THAT(ValidateLabels("m", {"le"}, {}, {"le"}).message(), HasSubstr("reserved"));
  EXPECT_THAT(ValidateLabels("m", {}, {{"c", "\xff"}}).message(), HasSubstr("UTF-8"));
  EXPECT_THAT(ValidateLabels("m", {"bad-name"}, {}).message(), HasSubstr("family \"m\""));
}

}  // namespace
}  // namespace metrics
