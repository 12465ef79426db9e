// Scheduled deliveries through the server's HTTP API: validation, listing, cancelling, delivery
// within a second of due under demo load, and SIGKILL in the middle of deliveries (after a
// restart every schedule has fired exactly once).
#include <signal.h>

#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/peers.h"

namespace {

using namespace ::metrics::test_support;
using nlohmann::json;

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Uuid(int i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", i);
  return buf;
}

int Post(httplib::Client& c, const json& body) {
  auto r = c.Post("/schedules", body.dump(), "application/json");
  return r ? r->status : 0;
}

json Events(httplib::Client& c, const std::string& stream) {
  auto r = c.Get("/streams/" + stream);
  if (!r || r->status != 200) return json::array();
  return json::parse(r->body)["events"];
}

TEST(SchedulerProcessTest, ApiAndDeliveryWithinASecondUnderDemoLoad) {
  const std::string dir = TempDir("sched-api");
  EventStoreServer s(EVENTSTORE_SERVER, dir + "/data", {"--demo-rate", "200"});
  ASSERT_GT(s.port(), 0);
  httplib::Client c = s.Client();
  // Refusals, each naming its problem.
  EXPECT_EQ(Post(c, {{"due_at", 1}, {"delay_seconds", 1}, {"stream", "s"}, {"type", "t"}}), 400);
  EXPECT_EQ(Post(c, {{"delay_seconds", 1}, {"type", "t"}}), 400);
  EXPECT_EQ(Post(c, {{"delay_seconds", -1}, {"stream", "s"}, {"type", "t"}}), 400);
  EXPECT_EQ(Post(c, {{"delay_seconds", 1}, {"stream", "s"}, {"type", "t"}, {"when", 1}}), 400);
  EXPECT_EQ(Post(c, {{"delay_seconds", 1}, {"stream", "s"}, {"type", "t"}, {"id", "nope"}}), 400);
  EXPECT_EQ(Post(c, {{"delay_seconds", 1}, {"stream", "scheduler:schedules"}, {"type", "t"}}), 400);
  auto junk = c.Post("/schedules", "{not json", "application/json");
  ASSERT_TRUE(junk);
  EXPECT_EQ(junk->status, 400);
  EXPECT_THAT(junk->body, ::testing::HasSubstr("\"error\""));

  const double created = Now();
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(Post(c, {{"delay_seconds", 1 + 0.05 * i},
                       {"stream", "remind-" + std::to_string(i)},
                       {"type", "reminder.due"},
                       {"data", {{"n", i}}},
                       {"id", Uuid(i)}}),
              201);
  }
  EXPECT_EQ(Post(c, {{"delay_seconds", 5}, {"stream", "x"}, {"type", "t"}, {"id", Uuid(3)}}), 409);
  auto list = c.Get("/schedules");
  ASSERT_TRUE(list && list->status == 200);
  // Ours, in the order listed (the demo load adds a reminder of its own every two seconds).
  json pending = json::array();
  const json listed = json::parse(list->body);
  for (const auto& p : listed["schedules"]) {
    if (p["stream"].get<std::string>().rfind("remind-", 0) == 0) pending.push_back(p);
  }
  ASSERT_EQ(pending.size(), 10u);
  EXPECT_EQ(pending[0]["id"], Uuid(0));  // soonest first
  auto del = c.Delete("/schedules/" + Uuid(9));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 204);
  EXPECT_EQ(c.Delete("/schedules/" + Uuid(9))->status, 404);

  ASSERT_TRUE(Eventually([&] { return Events(c, "remind-8").size() == 1; }, 10));
  for (int i = 0; i < 9; ++i) {
    const json ev = Events(c, "remind-" + std::to_string(i));
    ASSERT_EQ(ev.size(), 1u) << i;
    EXPECT_EQ(ev[0]["type"], "reminder.due");
    EXPECT_EQ(ev[0]["data"]["n"], i);
    EXPECT_EQ(ev[0]["id"], Uuid(i));
    const double at = ev[0]["timestamp_ns"].get<double>() * 1e-9;
    const double due = created + 1 + 0.05 * i;
    EXPECT_GE(at, due - 0.2) << "fired early";  // `created` was read before the POST
    EXPECT_LT(at, due + 1.0) << "fired more than a second late";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_TRUE(Events(c, "remind-9").empty());  // cancelled
  const std::string m = c.Get("/metrics")->body;
  // Ours and the demo load's reminders: at least our nine, and at most the demo's two pending.
  EXPECT_GE(MetricValue(m, "scheduler_deliveries_total{outcome=\"delivered\"}"), 9);
  EXPECT_LE(MetricValue(m, "scheduler_pending"), 2);
  EXPECT_GE(MetricValue(m, "scheduler_delivery_lateness_seconds_count"), 9);
  EXPECT_GT(MetricValue(m, "scheduler_last_tick_timestamp_seconds"), created);
  std::string out;
  RunShell("rm -rf " + dir, &out);
}

TEST(SchedulerProcessTest, KilledMidDeliveryEachScheduleFiresExactlyOnce) {
  const std::string dir = TempDir("sched-kill");
  std::mt19937 rng(std::random_device{}());
  constexpr int kSoon = 40, kLater = 5;
  {
    EventStoreServer s(EVENTSTORE_SERVER, dir + "/data");
    ASSERT_GT(s.port(), 0);
    httplib::Client c = s.Client();
    const double t0 = Now();
    for (int i = 0; i < kSoon + kLater; ++i) {
      const double due = i < kSoon ? t0 + 1.0 + 0.015 * i : t0 + 4.0;
      ASSERT_EQ(Post(c, {{"due_at", due},
                         {"stream", "k-" + std::to_string(i)},
                         {"type", "reminder.due"},
                         {"id", Uuid(100 + i)}}),
                201);
    }
    // SIGKILL somewhere inside the 0.6 s over which the first batch falls due.
    const double kill_at = t0 + 1.0 + std::uniform_real_distribution<double>(0.05, 0.55)(rng);
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.0, kill_at - Now())));
    s.Stop(SIGKILL);
  }
  EventStoreServer s(EVENTSTORE_SERVER, dir + "/data");
  ASSERT_GT(s.port(), 0);
  httplib::Client c = s.Client();
  ASSERT_TRUE(Eventually(
      [&] { return Events(c, "k-" + std::to_string(kSoon + kLater - 1)).size() == 1; }, 15));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (int i = 0; i < kSoon + kLater; ++i) {
    EXPECT_EQ(Events(c, "k-" + std::to_string(i)).size(), 1u) << "schedule " << i;
  }
  auto list = c.Get("/schedules");
  ASSERT_TRUE(list && list->status == 200);
  EXPECT_TRUE(json::parse(list->body)["schedules"].empty());
  std::string out;
  RunShell("rm -rf " + dir, &out);
}

}  // namespace
