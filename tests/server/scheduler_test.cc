// The scheduler on an in-memory store with a hand-driven clock: due times, cancel, rebuild from
// the scheduler:schedules stream, and the duplicate path that makes delivery exactly once.
#include "server/scheduler.h"
#include "store/event_store.h"

#include "engine/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/event_body.h"

namespace eventstore {
namespace {

using metrics::store::EventStore;
using metrics::store::ExpectedVersion;

std::string Id(char c) { return std::string(15, '\0') + c; }

double Count(const metrics::Registry& r, const std::string& family, const std::string& label) {
  const metrics::Snapshot s = r.Collect();
  for (const auto& f : s.families) {
    if (f.desc->name != family) continue;
    for (size_t k = 0; k < f.samples.size(); ++k) {
      if (label.empty() || (*f.samples[k].label_values)[0] == label) {
        return f.desc->type == metrics::MetricType::kHistogram ? f.histograms[k].count
                                                               : f.samples[k].Total();
      }
    }
  }
  return 0;
}

struct Fixture {
  metrics::Registry registry;
  std::unique_ptr<EventStore> store = *EventStore::Open({});
  double now = 1000;
  std::unique_ptr<Scheduler> Start(metrics::Registry* r) {
    auto s = Scheduler::Start(store.get(), r,
                              {.tick = std::chrono::hours(1), .now = [this] { return now; }});
    EXPECT_TRUE(s.ok()) << s.status();
    return *std::move(s);
  }
  size_t Events(const std::string& stream) {
    auto r = store->ReadStream(stream);
    return r.ok() ? r->size() : 0;
  }
};

TEST(SchedulerTest, DeliversWhenDueAndOnlyThen) {
  Fixture f;
  auto s = f.Start(&f.registry);
  ASSERT_TRUE(
      s->Add({.id = Id(1), .due_at = 1010, .stream = "r", .type = "remind", .data = "{}"}).ok());
  ASSERT_TRUE(
      s->Add({.id = Id(2), .due_at = 1005, .stream = "r", .type = "early", .data = "1"}).ok());
  ASSERT_TRUE(
      s->Add({.id = Id(3), .due_at = 1001, .stream = "r", .type = "gone", .data = "1"}).ok());
  EXPECT_EQ(s->Add({.id = Id(1), .due_at = 1, .stream = "r", .type = "x", .data = "1"}).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(s->Cancel(Id(3)).ok());
  EXPECT_EQ(s->Cancel(Id(3)).code(), absl::StatusCode::kNotFound);
  s->Tick();
  EXPECT_EQ(f.Events("r"), 0u);
  EXPECT_EQ(s->Pending().size(), 2u);
  EXPECT_EQ(s->Pending()[0].type, "early");  // soonest first
  f.now = 1012;
  s->Tick();
  auto r = f.store->ReadStream("r");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].type, "early");  // in due order
  EXPECT_EQ((*r)[0].id, Id(2));      // the schedule's id is the event's
  EXPECT_EQ((*r)[1].payload, "{}");
  EXPECT_TRUE(s->Pending().empty());
  EXPECT_EQ(Count(f.registry, "scheduler_deliveries_total", "delivered"), 2);
  EXPECT_EQ(Count(f.registry, "scheduler_delivery_lateness_seconds", ""), 2);
  EXPECT_EQ(Count(f.registry, "scheduler_pending", ""), 0);
  EXPECT_EQ(Count(f.registry, "scheduler_last_tick_timestamp_seconds", ""), 1012);
}

TEST(SchedulerTest, RebuildsFromTheStoreAndNeverDeliversTwice) {
  Fixture f;
  {
    auto s = f.Start(nullptr);
    ASSERT_TRUE(
        s->Add({.id = Id(1), .due_at = 1001, .stream = "r", .type = "a", .data = "1"}).ok());
    ASSERT_TRUE(
        s->Add({.id = Id(2), .due_at = 1002, .stream = "r", .type = "b", .data = "2"}).ok());
    ASSERT_TRUE(
        s->Add({.id = Id(3), .due_at = 2000, .stream = "r", .type = "c", .data = "3"}).ok());
    ASSERT_TRUE(
        s->Add({.id = Id(4), .due_at = 2000, .stream = "r", .type = "d", .data = "4"}).ok());
    ASSERT_TRUE(s->Cancel(Id(4)).ok());
    f.now = 1001.5;
    s->Tick();  // a delivered
  }
  // As if a crash came between b's event and its "delivered" marker: b is in its stream already.
  ASSERT_TRUE(f.store->Append("r", ExpectedVersion::kAny, {{"b", "2", Id(2)}}).ok());
  f.now = 1003;
  auto s = f.Start(&f.registry);  // a "restart"
  std::vector<Schedule> pending = s->Pending();
  ASSERT_EQ(pending.size(), 2u);  // b and c; a delivered, d cancelled
  EXPECT_EQ(pending[0].type, "b");
  EXPECT_EQ(pending[1].data, "3");
  s->Tick();
  EXPECT_EQ(f.Events("r"), 2u);  // a, b: b's second delivery was recognised as a duplicate
  EXPECT_EQ(Count(f.registry, "scheduler_deliveries_total", "duplicate"), 1);
  f.now = 2001;
  s->Tick();
  EXPECT_EQ(f.Events("r"), 3u);
  EXPECT_EQ(s->Add({.id = Id(1), .due_at = 1, .stream = "r", .type = "x", .data = "1"}).code(),
            absl::StatusCode::kAlreadyExists);  // delivered ids stay taken
}

TEST(SchedulerTest, EventsTheStoreRefusesAreRejectedNotRetriedForever) {
  Fixture f;
  auto s = f.Start(&f.registry);
  // An event type longer than the store allows.
  ASSERT_TRUE(
      s->Add(
           {.id = Id(1), .due_at = 0, .stream = "r", .type = std::string(100000, 't'), .data = "1"})
          .ok());
  s->Tick();
  EXPECT_TRUE(s->Pending().empty());
  EXPECT_EQ(Count(f.registry, "scheduler_deliveries_total", "rejected"), 1);
}

TEST(SchedulerTest, RecordsThatAreNotSchedulesAreSkippedAndStartStillWorks) {
  Fixture f;
  const std::string uuid = "00000000-0000-4000-8000-00000000000";
  auto put = [&](const std::string& type, const std::string& payload) {
    ASSERT_TRUE(f.store->Append(Scheduler::kStream, ExpectedVersion::kAny, {{type, payload}}).ok());
  };
  put("schedule.created", "not json");
  put("schedule.created", "[1,2]");
  put("schedule.created", R"({"id":5})");
  put("schedule.created", R"({"id":")" + uuid + R"(1","due_at":"soon","stream":"r","type":"t"})");
  put("schedule.created", R"({"id":")" + uuid + R"(2","due_at":1,"stream":7,"type":"t"})");
  put("schedule.created",
      R"({"id":")" + uuid + R"(3","due_at":1,"stream":"webhooks:subscriptions","type":"t"})");
  put("schedule.created", R"({"id":")" + uuid + R"(4","due_at":1,"stream":"r","type":"t"})");
  auto s = f.Start(nullptr);
  ASSERT_NE(s, nullptr);
  const std::vector<Schedule> pending = s->Pending();
  ASSERT_EQ(pending.size(), 1u);  // only the well-formed one
  EXPECT_EQ(pending[0].stream, "r");
  s->Tick();
  EXPECT_EQ(f.Events("r"), 1u);
  EXPECT_EQ(f.Events("webhooks:subscriptions"), 0u);
}

TEST(SchedulerTest, PendingIsCapped) {
  Fixture f;
  auto s =
      Scheduler::Start(f.store.get(), nullptr, {.tick = std::chrono::hours(1), .max_pending = 2});
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(
      (*s)->Add({.id = Id(1), .due_at = 9e9, .stream = "r", .type = "a", .data = "1"}).ok());
  ASSERT_TRUE(
      (*s)->Add({.id = Id(2), .due_at = 9e9, .stream = "r", .type = "a", .data = "1"}).ok());
  EXPECT_EQ((*s)->Add({.id = Id(3), .due_at = 9e9, .stream = "r", .type = "a", .data = "1"}).code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace eventstore
