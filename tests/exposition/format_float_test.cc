#include "exposition/format_float.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace metrics::exposition {
namespace {

std::string F(double v) {
  std::string s;
  AppendDouble(&s, v);
  return s;
}
std::string OM(double v) {
  std::string s;
  AppendOpenMetricsFloat(&s, v);
  return s;
}

// Expected strings are what Go's strconv.FormatFloat(v, 'g', -1, 64) prints.
TEST(FormatFloatTest, LikeGoShortestG) {
  EXPECT_EQ(F(0), "0");
  EXPECT_EQ(F(-0.0), "-0");
  EXPECT_EQ(F(1), "1");
  EXPECT_EQ(F(-2.5), "-2.5");
  EXPECT_EQ(F(0.1), "0.1");
  EXPECT_EQ(F(0.0001), "0.0001");
  EXPECT_EQ(F(0.00001), "1e-05");
  EXPECT_EQ(F(123456), "123456");
  EXPECT_EQ(F(1e6), "1e+06");
  EXPECT_EQ(F(1234567), "1.234567e+06");
  EXPECT_EQ(F(1.5e300), "1.5e+300");
  EXPECT_EQ(F(5e-324), "5e-324");
  EXPECT_EQ(F(0.005), "0.005");
  EXPECT_EQ(F(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(F(100), "100");
  EXPECT_EQ(F(1.0 / 3), "0.3333333333333333");
}

TEST(FormatFloatTest, Specials) {
  EXPECT_EQ(F(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(F(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(F(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(FormatFloatTest, RoundTrips) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100000; ++i) {
    uint64_t bits = rng();
    double v = __builtin_bit_cast(double, bits);
    if (!std::isfinite(v)) continue;
    std::string s = F(v);
    ASSERT_EQ(std::strtod(s.c_str(), nullptr), v) << s;
  }
}

TEST(FormatFloatTest, OpenMetricsKeepsAFraction) {
  EXPECT_EQ(OM(1), "1.0");
  EXPECT_EQ(OM(0.25), "0.25");
  EXPECT_EQ(OM(1e6), "1e+06");
  EXPECT_EQ(OM(std::numeric_limits<double>::infinity()), "+Inf");
}

TEST(FormatFloatTest, Uint) {
  std::string s;
  AppendUint(&s, 18446744073709551615ull);
  EXPECT_EQ(s, "18446744073709551615");
}

}  // namespace
}  // namespace metrics::exposition
