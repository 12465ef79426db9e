// The event-store server as a process: its HTTP API, its metrics, SIGTERM, and kill -9 in the
// middle of concurrent appends (every acknowledged event survives; nothing that was never sent
// appears).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/peers.h"

namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// The server binary as a child of the test.
class Server : public metrics::test_support::EventStoreServer {
 public:
  explicit Server(const std::string& data_dir, std::vector<std::string> extra = {})
      : EventStoreServer(EVENTSTORE_SERVER, data_dir, std::move(extra)) {}
};

std::string TempDir() { return metrics::test_support::TempDir("eventstore-test"); }

// Value of the sample line `prefix` (e.g. `events_stored_total{event_type="a"}`) in a scrape.
double Sample(const std::string& scrape, const std::string& prefix) {
  size_t p = scrape.find("\n" + prefix + " ");
  if (p == std::string::npos) return -1;
  return std::stod(scrape.substr(p + prefix.size() + 2));
}

TEST(ServerTest, ApiErrorsAndCleanShutdown) {
  std::string dir = TempDir();
  Server s(dir, {"--max-body-bytes", "1000"});
  ASSERT_GT(s.port(), 0);
  auto c = s.Client();
  auto ok = c.Post("/streams/team-red/events",
                   R"({"type":"team.registered","data":{"team":"red","name":"Red"}})",
                   "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 201);
  EXPECT_EQ(json::parse(ok->body)["stream_version"], 1);
  auto conflict = c.Post("/streams/team-red/events?expected_version=no_stream", R"({"type":"x"})",
                         "application/json");
  EXPECT_EQ(conflict->status, 409);
  EXPECT_THAT(conflict->body, HasSubstr("expected"));
  EXPECT_EQ(c.Post("/streams/team-red/events?expected_version=1", R"([{"type":"a"},{"type":"b"}])",
                   "application/json")
                ->status,
            201);
  EXPECT_EQ(c.Post("/streams/team-red/events", "{not json", "application/json")->status, 400);
  EXPECT_EQ(c.Post("/streams/team-red/events", R"({"data":1})", "application/json")->status, 400);
  EXPECT_EQ(c.Post("/streams/team-red/events", R"([])", "application/json")->status, 400);
  EXPECT_EQ(c.Post("/streams/team-red/events", R"([1])", "application/json")->status, 400);
  EXPECT_EQ(
      c.Post("/streams/team-red/events?expected_version=-3", R"({"type":"a"})", "application/json")
          ->status,
      400);
  EXPECT_EQ(c.Post("/streams/bad%20name/events", R"({"type":"a"})", "application/json")->status,
            400);
  EXPECT_EQ(
      c.Post("/streams/team-red/events", R"({"type":"bad\u0001type"})", "application/json")->status,
      400);
  auto big = c.Post("/streams/team-red/events",
                    R"({"type":"a","data":")" + std::string(5000, 'x') + "\"}", "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  auto read = c.Get("/streams/team-red");
  ASSERT_TRUE(read);
  json body = json::parse(read->body);
  EXPECT_EQ(body["version"], 3);
  EXPECT_EQ(body["events"][0]["data"]["name"], "Red");
  EXPECT_EQ(body["events"][2]["type"], "b");
  EXPECT_EQ(c.Get("/streams/nobody")->status, 404);
  EXPECT_EQ(c.Get("/nowhere")->status, 404);
  EXPECT_EQ(c.Get("/healthz")->status, 200);
  // Projections catch up.
  json teams;
  for (int i = 0; i < 100; ++i) {
    teams = json::parse(c.Get("/projections/teams")->body);
    if (!teams.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(teams.size(), 1u);
  EXPECT_EQ(teams[0]["id"], "red");
  EXPECT_EQ(s.Stop(SIGTERM), 0);
  // Restart: the events are there.
  Server again(dir);
  auto after = again.Client().Get("/streams/team-red");
  ASSERT_TRUE(after);
  EXPECT_EQ(json::parse(after->body)["version"], 3);
}

TEST(ServerTest, MetricsCountExactly) {
  Server s(TempDir());
  ASSERT_GT(s.port(), 0);
  auto c = s.Client();
  const std::map<std::string, int> counts = {
      {"team.registered", 7}, {"status.updated", 13}, {"member.joined", 5}};
  size_t bytes = 0;
  int total = 0;
  for (const auto& [type, n] : counts) {
    for (int i = 0; i < n; ++i) {
      json data = {
          {"team", "t" + std::to_string(i)}, {"status", std::string(i + 1, 's')}, {"name", "N"}};
      bytes += data.dump().size();  // the stored payload is the JSON text of "data"
      json ev = {{"type", type}, {"data", data}};
      auto r =
          c.Post("/streams/s-" + std::to_string(i % 3) + "/events", ev.dump(), "application/json");
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 201) << r->body;
      ++total;
    }
  }
  // One status update the projection cannot apply (no "status"): stored, then counted as an error.
  json broken = {{"team", "t0"}};
  bytes += broken.dump().size();
  ASSERT_EQ(c.Post("/streams/s-0/events", json{{"type", "status.updated"}, {"data", broken}}.dump(),
                   "application/json")
                ->status,
            201);
  ++total;
  std::string scrape;
  for (int i = 0; i < 500; ++i) {  // until both projections have applied everything
    scrape = c.Get("/metrics")->body;
    if (Sample(scrape, R"(projection_updates_total{projection="teams"})") +
                Sample(scrape, R"(projection_errors_total{projection="teams"})") ==
            total &&
        Sample(scrape, R"(projection_updates_total{projection="team_status"})") +
                Sample(scrape, R"(projection_errors_total{projection="team_status"})") ==
            total) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (const auto& [type, n] : counts) {
    EXPECT_EQ(Sample(scrape, "events_stored_total{event_type=\"" + type + "\"}"),
              n + (type == "status.updated" ? 1 : 0))
        << type;
  }
  EXPECT_EQ(Sample(scrape, "events_stored_bytes_total"), static_cast<double>(bytes));
  EXPECT_EQ(Sample(scrape, "event_processing_duration_seconds_count"), total);
  EXPECT_EQ(Sample(scrape, R"(projection_updates_total{projection="teams"})") +
                Sample(scrape, R"(projection_errors_total{projection="teams"})"),
            total);
  EXPECT_EQ(Sample(scrape, R"(projection_errors_total{projection="team_status"})"), 1);
  EXPECT_EQ(Sample(scrape, R"(projection_updates_total{projection="team_status"})"), total - 1);
  EXPECT_GT(Sample(scrape, "event_store_size_bytes"), static_cast<double>(bytes));
  EXPECT_GE(Sample(scrape, R"(projection_lag_seconds{projection="teams"})"), 0);
  EXPECT_GT(Sample(scrape, "process_resident_memory_bytes"), 0);
  EXPECT_GT(Sample(scrape, "process_start_time_seconds"), 0);
  // The build: an info metric, a gauge of 1 in text 0.0.4, with the project's version.
  EXPECT_THAT(scrape, ::testing::HasSubstr("# TYPE eventstore_build_info gauge\n"));
  EXPECT_THAT(
      scrape,
      ::testing::ContainsRegex(
          R"re(eventstore_build_info\{version="[0-9]+\.[0-9]+\.[0-9]+",revision="([0-9a-f]+|unknown)"\} 1)re"));
}

TEST(ServerTest, KillNineLosesNoAcknowledgedEventAndInventsNone) {
  std::string dir = TempDir();
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> acked;  // stream -> payloads in version order
  std::set<std::string> sent;                             // every payload ever sent
  {
    Server s(dir, {"--fsync", "every-batch"});
    ASSERT_GT(s.port(), 0);
    std::atomic<bool> stop{false};
    std::atomic<int> acks{0};
    std::vector<std::thread> clients;
    for (int k = 0; k < 4; ++k) {
      clients.emplace_back([&, k] {
        auto c = s.Client();
        c.set_read_timeout(2);
        std::string stream = "crash-" + std::to_string(k);
        for (int i = 0; !stop.load(); ++i) {
          std::string payload =
              "\"client " + std::to_string(k) + " event " + std::to_string(i) + "\"";
          {
            std::lock_guard<std::mutex> l(mu);
            sent.insert(payload);
          }
          auto r = c.Post("/streams/" + stream + "/events?expected_version=" + std::to_string(i),
                          R"({"type":"crash.test","data":)" + payload + "}", "application/json");
          if (!r || r->status != 201) break;  // the server is gone
          std::lock_guard<std::mutex> l(mu);
          acked[stream].push_back(payload);
          acks.fetch_add(1);
        }
      });
    }
    while (acks.load() < 200) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(s.Stop(SIGKILL), -SIGKILL);  // mid-stream: clients are still sending
    stop.store(true);
    for (auto& t : clients) t.join();
  }
  Server again(dir);
  ASSERT_GT(again.port(), 0);
  auto c = again.Client();
  for (int k = 0; k < 4; ++k) {
    std::string stream = "crash-" + std::to_string(k);
    auto r = c.Get("/streams/" + stream);
    ASSERT_TRUE(r);
    json events = r->status == 200 ? json::parse(r->body)["events"] : json::array();
    const auto& want = acked[stream];
    ASSERT_GE(events.size(), want.size()) << stream << ": acknowledged events lost";
    EXPECT_LE(events.size(), want.size() + 1) << stream << ": at most the one in flight is extra";
    for (size_t i = 0; i < events.size(); ++i) {
      std::string payload = events[i]["data"].dump();
      if (i < want.size()) {
        EXPECT_EQ(payload, want[i]) << stream << " version " << i + 1;
      }
      EXPECT_TRUE(sent.count(payload)) << "never sent: " << payload;
      EXPECT_EQ(events[i]["version"], i + 1);
    }
  }
}

}  // namespace

namespace {

// The server's own periodic work (the /stats sampler) runs as an instrumented job, and the store's
// event count is in the registry /stats reads.
TEST(ServerTest, PeriodicWorkIsInstrumentedAndStatsAgreeWithMetrics) {
  std::string dir = TempDir();
  Server s(dir);
  ASSERT_GT(s.port(), 0);
  auto c = s.Client();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(c.Post("/streams/s/events", R"({"type":"a"})", "application/json")->status, 201);
  }
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m && m->status == 200);
  EXPECT_GE(Sample(m->body, "job_runs_total{job=\"stats_sample\"}"), 1);
  EXPECT_GT(Sample(m->body, "job_last_success_timestamp_seconds{job=\"stats_sample\"}"), 1.7e9);
  EXPECT_EQ(Sample(m->body, "event_store_events"), 3);
  auto st = c.Get("/stats");
  ASSERT_TRUE(st && st->status == 200);
  const json j = json::parse(st->body);
  EXPECT_EQ(j["events_count_total"], 3);
  EXPECT_EQ(j["events_by_type"]["a"], Sample(m->body, "events_stored_total{event_type=\"a\"}"));
  EXPECT_EQ(s.Stop(SIGTERM), 0);
}

}  // namespace
