// Projections: exactly once and in order, replay for late projections, the failure policy (retry,
// then skip, counted and logged), and the domain projections (teams, team status).
#include "store/projections.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/event_store.h"
#include "tests/store/store_test_util.h"

namespace metrics::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<NewEvent> One(std::string type, std::string payload) {
  std::vector<NewEvent> v;
  v.push_back({std::move(type), std::move(payload)});
  return v;
}

Event MakeEvent(uint64_t position, std::string type, std::string payload) {
  return Event{.position = position,
               .stream = "s",
               .stream_version = position,
               .type = std::move(type),
               .payload = std::move(payload),
               .timestamp_ns = 1000 + static_cast<int64_t>(position)};
}

StoreOptions FastRetries() {
  return {.projection_retries = 3, .projection_backoff = std::chrono::milliseconds(0)};
}

TEST(StoreProjectionsTest, EveryEventOnceInOrderIncludingReplay) {
  auto store = *EventStore::Open({});
  std::vector<uint64_t> early, late;  // touched by the projector thread only until Wait returns
  ASSERT_TRUE(store
                  ->AddProjection("early",
                                  [&](const Event& e) {
                                    early.push_back(e.position);
                                    return absl::OkStatus();
                                  })
                  .ok());
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(store->Append(absl::StrCat("s", i % 7), ExpectedVersion::kAny, One("t", "p")).ok());
  }
  // A projection added later starts from position 1.
  ASSERT_TRUE(store
                  ->AddProjection("late",
                                  [&](const Event& e) {
                                    late.push_back(e.position);
                                    return absl::OkStatus();
                                  })
                  .ok());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(store->Append("x", ExpectedVersion::kAny, {{"t", "1"}, {"t", "2"}}).ok());
  }
  ASSERT_TRUE(store->WaitForProjections(800, std::chrono::seconds(30)).ok());
  std::vector<uint64_t> want(800);
  for (uint64_t i = 0; i < 800; ++i) want[i] = i + 1;
  EXPECT_EQ(early, want);
  EXPECT_EQ(late, want);
  EXPECT_EQ(store->GetProjectionStats("late")->applied_through, 800u);
  EXPECT_EQ(store->GetProjectionStats("late")->updates, 800u);
}

TEST(StoreProjectionsTest, CloseStopsProjectionsBetweenEvents) {
  auto store = *EventStore::Open({});
  std::atomic<int> seen{0};
  ASSERT_TRUE(store
                  ->AddProjection("slow",
                                  [&](const Event&) {
                                    std::this_thread::sleep_for(std::chrono::microseconds(50));
                                    seen.fetch_add(1);
                                    return absl::OkStatus();
                                  })
                  .ok());
  for (int i = 0; i < 200; ++i)
    ASSERT_TRUE(store->Append("s", ExpectedVersion::kAny, One("t", "")).ok());
  ASSERT_TRUE(store->Close().ok());
  // Wherever it stopped, it stopped between events: what it applied is what it reports.
  EXPECT_LE(seen.load(), 200);
  EXPECT_EQ(static_cast<uint64_t>(seen.load()), store->GetProjectionStats("slow")->applied_through);
}

TEST(StoreProjectionsTest, FailurePolicyRetriesThenSkipsCountedAndLogged) {
  auto store = *EventStore::Open(FastRetries());
  std::vector<uint64_t> applied;
  int transient_failures_left = 2;
  int calls = 0;
  ASSERT_TRUE(store
                  ->AddProjection("policy",
                                  [&](const Event& e) -> absl::Status {
                                    ++calls;
                                    if (e.type == "poison") return absl::InternalError("boom");
                                    if (e.type == "flaky" && transient_failures_left > 0) {
                                      --transient_failures_left;
                                      return absl::UnavailableError("try again");
                                    }
                                    if (e.type == "throws") throw std::runtime_error("thrown");
                                    applied.push_back(e.position);
                                    return absl::OkStatus();
                                  })
                  .ok());
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(
      store
          ->Append("s", ExpectedVersion::kAny,
                   {{"fine", ""}, {"poison", ""}, {"flaky", ""}, {"throws", ""}, {"fine", ""}})
          .ok());
  ASSERT_TRUE(store->WaitForProjections(5, std::chrono::seconds(10)).ok());
  const std::string err = ::testing::internal::GetCapturedStderr();

  // The poison (Internal) and the throwing event fail the same way every time: skipped after one
  // attempt. The flaky one (Unavailable: transient) succeeds on its third attempt; the others once.
  EXPECT_THAT(applied, ElementsAre(1, 3, 5));
  EXPECT_EQ(calls, 1 + 1 + 3 + 1 + 1);
  auto stats = *store->GetProjectionStats("policy");
  EXPECT_EQ(stats.updates, 3u);
  EXPECT_EQ(stats.errors, 2u);
  EXPECT_EQ(stats.retries, 2u);
  EXPECT_EQ(stats.applied_through, 5u);
  EXPECT_THAT(err, HasSubstr("projection \"policy\" skipped position 2"));
  EXPECT_THAT(err, HasSubstr("after 1 attempt: INTERNAL: boom"));
  EXPECT_THAT(err, HasSubstr("boom"));
  EXPECT_THAT(err, HasSubstr("projection \"policy\" skipped position 4"));
  EXPECT_THAT(err, HasSubstr("thrown"));
  EXPECT_THAT(err, testing::Not(HasSubstr("position 3")));
}

TEST(StoreProjectionsTest, TransientFailuresExhaustTheirRetriesThenSkip) {
  auto store = *EventStore::Open(FastRetries());
  int calls = 0;
  ASSERT_TRUE(store
                  ->AddProjection("down",
                                  [&](const Event&) -> absl::Status {
                                    ++calls;
                                    return absl::DeadlineExceededError("backend slow");
                                  })
                  .ok());
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(store->Append("s", ExpectedVersion::kAny, {{"x", ""}}).ok());
  ASSERT_TRUE(store->WaitForProjections(1, std::chrono::seconds(10)).ok());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(calls, 4);  // 1 + projection_retries
  EXPECT_EQ(store->GetProjectionStats("down")->retries, 3u);
  EXPECT_THAT(err, HasSubstr("after 4 attempts: DEADLINE_EXCEEDED"));
}

// 20,000 events the projection can never apply (the issue's status.updated without a team): each
// is skipped at once, without retries, and the log says so in a few lines, not 20,000.
TEST(StoreProjectionsTest, PermanentFailuresAreSkippedAtOnceAndLoggedRateLimited) {
  auto store = *EventStore::Open({});  // default retries and a 1 ms backoff: 7 ms per retried event
  auto status = std::make_shared<TeamStatusProjection>();
  ASSERT_TRUE(store->AddProjection("team_status", AsProjection(status)).ok());
  ::testing::internal::CaptureStderr();
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<NewEvent> events;
    for (int i = 0; i < 1000; ++i) events.push_back({"status.updated", R"({"status":"ready"})"});
    ASSERT_TRUE(store->Append("t", ExpectedVersion::kAny, std::move(events)).ok());
  }
  // With retries this would take 20,000 x 7 ms = 140 s.
  ASSERT_TRUE(store->WaitForProjections(20000, std::chrono::seconds(60)).ok());
  const std::string err = ::testing::internal::GetCapturedStderr();
  auto stats = *store->GetProjectionStats("team_status");
  EXPECT_EQ(stats.errors, 20000u);
  EXPECT_EQ(stats.retries, 0u);
  EXPECT_LE(std::count(err.begin(), err.end(), '\n'), 15) << err.substr(0, 2000);
  EXPECT_THAT(err, HasSubstr("further skips: one summary line per 10 s"));
}

// Close() stops the projector at an event boundary whatever the backlog, also out of a backoff.
TEST(StoreProjectionsTest, CloseStopsAProjectionWithABacklogPromptly) {
  auto store = *EventStore::Open(
      {.projection_retries = 1000, .projection_backoff = std::chrono::milliseconds(50)});
  std::atomic<int> calls{0};
  ASSERT_TRUE(store
                  ->AddProjection("slow",
                                  [&](const Event& e) -> absl::Status {
                                    ++calls;
                                    if (e.type == "stuck") return absl::UnavailableError("later");
                                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                                    return absl::OkStatus();
                                  })
                  .ok());
  std::vector<NewEvent> events;
  for (int i = 0; i < 2000; ++i) events.push_back({"ok", ""});  // 40 s of work
  ASSERT_TRUE(store->Append("s", ExpectedVersion::kAny, std::move(events)).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(store->Close().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_LT(calls.load(), 1000);
  const uint64_t through = store->GetProjectionStats("slow")->applied_through;
  EXPECT_LT(through, 2000u);
  EXPECT_EQ(store->GetProjectionStats("slow")->updates, through);  // stopped between events

  // The same from inside a retry backoff (1000 retries x up to 100 ms otherwise).
  auto stuck = *EventStore::Open(
      {.projection_retries = 1000, .projection_backoff = std::chrono::milliseconds(100)});
  ASSERT_TRUE(
      stuck->AddProjection("stuck", [](const Event&) { return absl::UnavailableError("never"); })
          .ok());
  ASSERT_TRUE(stuck->Append("s", ExpectedVersion::kAny, {{"stuck", ""}}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(stuck->Close().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(stuck->GetProjectionStats("stuck")->applied_through, 0u);
}

TEST(StoreProjectionsTest, RegistrationErrors) {
  auto store = *EventStore::Open({});
  auto ok = [](const Event&) { return absl::OkStatus(); };
  EXPECT_TRUE(store->AddProjection("a", ok).ok());
  EXPECT_EQ(store->AddProjection("a", ok).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->AddProjection("", ok).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->AddProjection("bad\xff", ok).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->AddProjection("null", nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->GetProjectionStats("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(StoreProjectionsTest, WaitTimesOutWhenNotThere) {
  auto store = *EventStore::Open({});
  EXPECT_TRUE(store->WaitForProjections(5, std::chrono::milliseconds(1)).ok());  // none registered
  ASSERT_TRUE(store->AddProjection("p", [](const Event&) { return absl::OkStatus(); }).ok());
  auto s = store->WaitForProjections(1, std::chrono::milliseconds(20));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("p at 0"));
}

TEST(StoreProjectionsTest, TeamsProjectionParsesRegistrations) {
  TeamsProjection teams;
  EXPECT_TRUE(
      teams.Apply(MakeEvent(1, "team.registered", R"({"team":"red","name":"Red Team"})")).ok());
  EXPECT_TRUE(
      teams
          .Apply(MakeEvent(2, "team.registered", R"({"name":"Blue Team","team":"blue","extra":1})"))
          .ok());
  EXPECT_TRUE(teams.Apply(MakeEvent(3, "status.updated", "not json, not ours")).ok());  // ignored
  EXPECT_TRUE(teams.Apply(MakeEvent(4, "team.registered", R"({"team":"red","name":"Reds"})")).ok());
  EXPECT_THAT(teams.Teams(), ElementsAre(TeamsProjection::Team{"blue", "Blue Team", 2, 1002},
                                         TeamsProjection::Team{"red", "Reds", 4, 1004}));
  EXPECT_FALSE(teams.Find("green").has_value());

  for (const char* bad :
       {"", "{", "[1,2]", "\"red\"", R"({"team":"red"})", R"({"team":1,"name":"x"})",
        R"({"team":"","name":"x"})", "{\"team\":\"r\xff\",\"name\":\"x\"}"}) {
    absl::Status s = teams.Apply(MakeEvent(9, "team.registered", bad));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("position 9")) << bad;
  }
  EXPECT_EQ(teams.size(), 2u);  // errors change nothing
}

TEST(StoreProjectionsTest, TeamStatusProjectionKeepsLatest) {
  TeamStatusProjection status;
  EXPECT_TRUE(
      status.Apply(MakeEvent(1, "status.updated", R"({"team":"red","status":"ready"})")).ok());
  EXPECT_TRUE(
      status.Apply(MakeEvent(2, "status.updated", R"({"team":"blue","status":"ready"})")).ok());
  EXPECT_TRUE(
      status.Apply(MakeEvent(3, "status.updated", R"({"team":"red","status":"playing"})")).ok());
  EXPECT_TRUE(status.Apply(MakeEvent(4, "team.registered", R"({"team":"x","name":"y"})")).ok());
  auto red = status.Find("red");
  ASSERT_TRUE(red.has_value());
  EXPECT_EQ(red->status, "playing");
  EXPECT_EQ(red->position, 3u);
  EXPECT_EQ(red->updates, 2u);
  EXPECT_EQ(status.All().size(), 2u);
  EXPECT_EQ(status.Apply(MakeEvent(5, "status.updated", R"({"team":"red"})")).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StoreProjectionsTest, DomainProjectionsThroughTheStoreWithAMalformedEvent) {
  Registry registry;
  StoreOptions o = FastRetries();
  o.registry = &registry;
  auto store = *EventStore::Open(o);
  auto teams = std::make_shared<TeamsProjection>();
  auto status = std::make_shared<TeamStatusProjection>();
  ASSERT_TRUE(store->AddProjection(std::string(TeamsProjection::kName), AsProjection(teams)).ok());
  ASSERT_TRUE(
      store->AddProjection(std::string(TeamStatusProjection::kName), AsProjection(status)).ok());
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(store
                  ->Append("team-red", ExpectedVersion::kNoStream,
                           One("team.registered", R"({"team":"red","name":"Red Team"})"))
                  .ok());
  ASSERT_TRUE(
      store->Append("team-bad", ExpectedVersion::kNoStream, One("team.registered", R"({"team":)"))
          .ok());
  ASSERT_TRUE(store
                  ->Append("team-red", ExpectedVersion::Exact(1),
                           One("status.updated", R"({"team":"red","status":"ready"})"))
                  .ok());
  ASSERT_TRUE(store->WaitForProjections(3, std::chrono::seconds(10)).ok());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("projection \"teams\" skipped position 2"));
  EXPECT_THAT(err, HasSubstr("not valid JSON"));
  EXPECT_EQ(teams->size(), 1u);
  EXPECT_EQ(teams->Find("red")->name, "Red Team");
  EXPECT_EQ(status->Find("red")->status, "ready");
  EXPECT_EQ(testing_util::Value(registry, "projection_errors_total", {"teams"}), 1);
  EXPECT_EQ(testing_util::Value(registry, "projection_updates_total", {"teams"}), 2);
  EXPECT_EQ(testing_util::Value(registry, "projection_errors_total", {"team_status"}), 0);
  EXPECT_EQ(testing_util::Value(registry, "projection_updates_total", {"team_status"}), 3);
}

}  // namespace
}  // namespace metrics::store
