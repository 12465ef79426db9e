// The append body parser: shapes accepted and refused, limits, and data kept byte for byte.
#include "server/event_body.h"

#include <gtest/gtest.h>

#include <string>

#include "server/json_out.h"

namespace eventstore {
namespace {

std::string Error(std::string_view body, BodyLimits limits = {}) {
  auto r = ParseEventsBody(body, limits);
  return r.ok() ? "ok" : std::string(r.status().message());
}

TEST(EventBodyTest, OneObjectOrAnArrayOfThem) {
  auto one = ParseEventsBody(R"({"type":"a","data":{"x":1}})");
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].type, "a");
  EXPECT_EQ((*one)[0].data, R"({"x":1})");

  auto many = ParseEventsBody(R"( [ {"data": [1, 2.50, "s"], "type": "b"} ,
                                   {"type":"c"}, {"type":"d","data":"str\"ing"} ] )");
  ASSERT_TRUE(many.ok()) << many.status();
  ASSERT_EQ(many->size(), 3u);
  EXPECT_EQ((*many)[0].type, "b");
  EXPECT_EQ((*many)[0].data, R"([1, 2.50, "s"])");  // bytes as sent: 2.50 stays 2.50
  EXPECT_EQ((*many)[1].data, "null");               // no data
  EXPECT_EQ((*many)[2].data, R"("str\"ing")");
}

TEST(EventBodyTest, DataIsKeptExactlyWhateverItHolds) {
  const std::string data =
      R"({"k":"v}]\\\"","n":-1.5e+300,"u":"\u00e9\ud83d\ude00","a":[[],{},[{"x":null}]],"t":true})";
  auto r = ParseEventsBody(R"({"type":"t","data":)" + data + "}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].data, data);
  // An escaped key spelling "data" is the data member.
  auto e = ParseEventsBody(R"({"type":"t","d\u0061ta":[1]})");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)[0].data, "[1]");
  // Types are unescaped.
  auto t = ParseEventsBody(R"({"type":"caf\u00e9"})");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)[0].type, "caf\xc3\xa9");
}

TEST(EventBodyTest, RefusesWhatIsNotAnEventList) {
  EXPECT_NE(Error("").find("not valid JSON"), std::string::npos);
  EXPECT_NE(Error("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(Error(R"({"type":"a"} x)").find("not valid JSON"), std::string::npos);
  EXPECT_NE(Error("type=a&data=b").find("not valid JSON"), std::string::npos);
  EXPECT_NE(Error("[]").find("non-empty array"), std::string::npos);
  EXPECT_NE(Error("42").find("event object"), std::string::npos);
  EXPECT_NE(Error(R"("s")").find("event object"), std::string::npos);
  EXPECT_EQ(Error(R"([{"type":"a"}, 3])"), "event 1 is not an object");
  EXPECT_EQ(Error(R"([[{"type":"a"}]])"), "event 0 is not an object");
  EXPECT_EQ(Error("{}"), "missing string \"type\"");
  EXPECT_EQ(Error(R"([{"type":"a"},{"data":1}])"), "event 1: missing string \"type\"");
  EXPECT_EQ(Error(R"({"type":1})"), "\"type\" must be a string");
  EXPECT_EQ(Error(R"({"type":{"a":"b"}})"), "\"type\" must be a string");
  EXPECT_EQ(Error(R"({"type":"a","type":"b"})"), "\"type\" given twice");
  EXPECT_EQ(Error(R"({"type":"a","data":1,"data":2})"), "\"data\" given twice");
  EXPECT_NE(Error(R"({"type":"a","idx":"x"})").find("unknown field \"idx\""), std::string::npos);
  EXPECT_NE(Error(R"({"type":"a","id":"x"})").find("must be a UUID"), std::string::npos);
  EXPECT_NE(Error(R"({"type":"a","id":5})").find("must be a UUID"), std::string::npos);
  EXPECT_NE(Error(R"({"type":"a","id":"1b4e28ba-2fa1-11d2-883f-0016d3cca42g"})").find("UUID"),
            std::string::npos);
  EXPECT_EQ(Error(R"({"type":"a","id":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","id":"x"})"),
            "\"id\" given twice");
  // A key named "type" inside data is just data.
  EXPECT_EQ(Error(R"({"type":"a","data":{"type":5,"id":1}})"), "ok");
  // Invalid UTF-8 in a string.
  EXPECT_NE(Error("{\"type\":\"\xff\"}").find("not valid JSON"), std::string::npos);
}

TEST(EventBodyTest, IdsAreUuidsKeptAsTheir16Bytes) {
  auto r =
      ParseEventsBody(R"([{"type":"a","id":"1B4E28BA-2fa1-11d2-883f-0016d3cca427"},{"type":"b"}])");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ((*r)[0].id.size(), 16u);
  EXPECT_EQ(static_cast<unsigned char>((*r)[0].id[0]), 0x1b);
  EXPECT_EQ(FormatUuid((*r)[0].id), "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
  EXPECT_EQ((*r)[1].id, "");
  std::string bytes;
  EXPECT_FALSE(ParseUuid("1b4e28ba2fa111d2883f0016d3cca427", &bytes));
  EXPECT_FALSE(ParseUuid("1b4e28ba-2fa1-11d2-883f_0016d3cca427", &bytes));
}

TEST(EventBodyTest, DeepNestingIsRefusedWithoutRecursion) {
  // 100,000 levels: a recursive parser or serializer overflows the stack here.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(Error(R"({"type":"a","data":)" + deep + "}"), "JSON nested deeper than 64 levels");
  EXPECT_EQ(Error(deep), "event 0 is not an object");  // refused at once, also without recursion
  EXPECT_EQ(Error(R"([{"type":"a","data":)" + deep + "}]"), "JSON nested deeper than 64 levels");
  // Just inside the limit: the event object is level 1, so data may open 63 more.
  const std::string ok = std::string(63, '[') + std::string(63, ']');
  EXPECT_EQ(Error(R"({"type":"a","data":)" + ok + "}"), "ok");
  const std::string over = std::string(64, '[') + std::string(64, ']');
  EXPECT_EQ(Error(R"({"type":"a","data":)" + over + "}"), "JSON nested deeper than 64 levels");
  EXPECT_EQ(Error(R"({"type":"a","data":[[[]]]})", {.max_depth = 3}),
            "JSON nested deeper than 3 levels");
}

TEST(EventBodyTest, LimitsTheNumberOfEvents) {
  std::string body = "[";
  for (int i = 0; i < 11; ++i) body += std::string(i ? "," : "") + R"({"type":"a"})";
  body += "]";
  EXPECT_EQ(Error(body, {.max_events = 11}), "ok");
  EXPECT_EQ(Error(body, {.max_events = 10}), "more than 10 events in one request");
}

TEST(JsonOutTest, EventsGoOutWithTheirPayloadSplicedOrBase64) {
  metrics::store::Event e{.position = 7,
                          .stream = "s-1",
                          .stream_version = 2,
                          .type = "a\"b\n\x01",
                          .payload = R"({"deep":[[[1]]]})",
                          .timestamp_ns = 5};
  std::string out;
  AppendEvent(&out, e, true);
  EXPECT_EQ(out, R"({"position":7,"stream":"s-1","version":2,"type":"a\"b\n\u0001",)"
                 R"("data":{"deep":[[[1]]]},"timestamp_ns":5})");
  e.payload = std::string("\xff\x00x", 3);
  out.clear();
  AppendEvent(&out, e, false);
  EXPECT_NE(out.find(R"("data":null,"data_base64":"/wB4")"), std::string::npos) << out;
  // A payload stored deep (by an embedding program) is spliced, not parsed into a tree.
  e.payload = std::string(200000, '[') + std::string(200000, ']');
  out.clear();
  AppendEvent(&out, e, false);
  EXPECT_NE(out.find(e.payload), std::string::npos);
}

}  // namespace
}  // namespace eventstore
