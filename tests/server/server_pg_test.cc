// eventstore-server --pg-url against a PostgreSQL 15 cluster this test starts: the API answers as
// with the embedded store, two server processes share one store (the advisory lock keeps global
// positions dense and in commit order across them), projections follow by polling, the metric set
// keeps its names, an idle PostgreSQL restart costs no failed request, and under load a restart
// tells every request the truth (2xx stored, 503 not stored, 500 unknown) and the server recovers.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/peers.h"
#include "tests/support/postgres_cluster.h"

namespace {

using metrics::test_support::Eventually;
using metrics::test_support::GetJson;
using metrics::test_support::MetricValue;
using metrics::test_support::PostgresCluster;
using metrics::test_support::TempDir;
using nlohmann::json;

// eventstore-server --pg-url on a port it picks itself (a port chosen here could be taken by a
// parallel test before the child binds it); its stderr is the test's.
struct Server {
  Server(const std::string& conninfo, const std::string& dir, const std::string& name)
      : process(EVENTSTORE_SERVER, dir + "/unused-" + name, {"--pg-url", conninfo}),
        port(process.port()) {}
  bool Healthy() {
    httplib::Client c("127.0.0.1", port);
    auto r = c.Get("/healthz");
    return r && r->status == 200;
  }
  // POST one event; the status (0: no answer) and the body.
  std::pair<int, json> Post(const std::string& stream, const json& event,
                            const std::string& query = "") {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10);
    auto r = c.Post("/streams/" + stream + "/events" + query, event.dump(), "application/json");
    if (!r) return {0, nullptr};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  metrics::test_support::EventStoreServer process;
  int port;
};

class ServerPgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PostgresCluster::Installed()) {
      GTEST_SKIP() << "PostgreSQL 15 binaries not found in " << PostgresCluster::kBinDir;
    }
    const std::string err = cluster_.Start();
    ASSERT_EQ(err, "");
    ASSERT_EQ(cluster_.CreateDatabase("server_pg"), "");
    dir_ = TempDir("server-pg");
  }
  void TearDown() override {
    std::string out;
    if (!dir_.empty()) metrics::test_support::RunShell("rm -rf " + dir_, &out);
  }
  PostgresCluster cluster_;
  std::string dir_;
};

TEST_F(ServerPgTest, ApiTwoProcessesAndARestart) {
  Server a(cluster_.ConnInfo("server_pg"), dir_, "a");
  ASSERT_TRUE(Eventually([&] { return a.Healthy(); }, 20)) << "server a did not start";
  Server b(cluster_.ConnInfo("server_pg"), dir_, "b");  // the same database: one store
  ASSERT_TRUE(Eventually([&] { return b.Healthy(); }, 20)) << "server b did not start";

  const json reg = {{"type", "team.registered"},
                    {"data", {{"team", "red"}, {"name", "Red"}}},
                    {"id", "11111111-2222-3333-4444-555555555555"}};
  auto [st, body] = a.Post("team-red", reg, "?expected_version=no_stream");
  ASSERT_EQ(st, 201) << body.dump() << "server a did not start";
  EXPECT_EQ(body["first_position"], 1);
  // The retry through the other process: a duplicate, the same position.
  std::tie(st, body) = b.Post("team-red", reg, "?expected_version=no_stream");
  EXPECT_EQ(st, 200) << body.dump();
  EXPECT_EQ(body["duplicate"], true);
  EXPECT_EQ(body["first_position"], 1);
  std::tie(st, body) = b.Post("team-red", {{"type", "x"}, {"data", 1}}, "?expected_version=5");
  EXPECT_EQ(st, 409) << body.dump();

  // Both processes append at once: positions stay dense and every event is there once.
  constexpr int kPerThread = 100;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Server& s = t % 2 == 0 ? a : b;
      for (int i = 0; i < kPerThread; ++i) {
        auto r = s.Post("load-" + std::to_string(t % 3),
                        {{"type", "load"}, {"data", {{"t", t}, {"i", i}}}});
        if (r.first != 201) failed.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failed.load(), 0);
  const int total = 1 + 4 * kPerThread;
  std::set<std::string> seen;
  for (int from = 1;;) {
    json page = GetJson(b.port, "/all?from_position=" + std::to_string(from) + "&limit=1000");
    ASSERT_TRUE(page.is_object()) << page.dump();
    for (const json& e : page["events"]) {
      EXPECT_EQ(e["position"], from) << "a gap or a reorder at " << from;
      ++from;
      seen.insert(e["data"].dump());
    }
    if (page["next_from_position"].is_null()) break;
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(total));

  // The projections follow the table (polling).
  EXPECT_TRUE(Eventually(
      [&] {
        json teams = GetJson(a.port, "/projections/teams");
        return teams.is_array() && teams.size() == 1 && teams[0]["id"] == "red";
      },
      10));

  // A PostgreSQL restart drops every connection: the next requests reconnect, none fails.
  ASSERT_EQ(cluster_.Restart(), "");
  std::tie(st, body) = a.Post("team-red", {{"type", "after.restart"}, {"data", 1}});
  EXPECT_EQ(st, 201) << body.dump();
  json all = GetJson(a.port, "/all?from_position=" + std::to_string(total) + "&limit=10");
  ASSERT_TRUE(all.is_object()) << all.dump();
  EXPECT_EQ(all["last_position"], total + 1);
  EXPECT_TRUE(a.Healthy());
  EXPECT_TRUE(b.Healthy());

  // The metric set keeps its names; each process counts what it stored.
  auto scrape = [](const Server& s) {
    httplib::Client c("127.0.0.1", s.port);
    auto r = c.Get("/metrics");
    return r && r->status == 200 ? "\n" + r->body : std::string();
  };
  // The poller applies the table's events within its interval (100 ms) of their commit.
  std::string ma, mb;
  EXPECT_TRUE(Eventually(
      [&] {
        ma = scrape(a);
        return MetricValue(ma, "projection_updates_total{projection=\"teams\"}") >= total + 1;
      },
      10))
      << ma;
  mb = scrape(b);
  ASSERT_FALSE(ma.empty());
  ASSERT_FALSE(mb.empty());
  EXPECT_EQ(MetricValue(ma, "events_stored_total{event_type=\"load\"}") +
                MetricValue(mb, "events_stored_total{event_type=\"load\"}"),
            4 * kPerThread);
  EXPECT_GT(MetricValue(ma, "event_processing_duration_seconds_count"), 0);
  EXPECT_GT(MetricValue(ma, "event_store_size_bytes"), 0);
  EXPECT_GE(MetricValue(ma, "projection_lag_seconds{projection=\"teams\"}"), 0);
  EXPECT_GE(MetricValue(ma, "pg_pool_connections{state=\"idle\"}"), 0);
  EXPECT_GE(MetricValue(ma, "pg_pool_wait_seconds_count"), 1);
  // The restart killed a's connections: counted, under 57 (admin shutdown) or "connection".
  EXPECT_GE(std::max(MetricValue(ma, "pg_errors_total{class=\"57\"}"),
                     MetricValue(ma, "pg_errors_total{class=\"connection\"}")),
            1)
      << ma;
}

TEST_F(ServerPgTest, PostgresRestartUnderLoadEveryRequestToldTheTruth) {
  Server a(cluster_.ConnInfo("server_pg"), dir_, "a");
  ASSERT_TRUE(Eventually([&] { return a.Healthy(); }, 20)) << "server a did not start";
  // Four appenders, each event with an id, each request once (no retries here): a 2xx means
  // stored, 503 means not stored, 500 means not known. Meanwhile PostgreSQL restarts.
  constexpr int kClients = 4;
  struct Outcome {
    std::string id;
    int status;
  };
  std::vector<std::vector<Outcome>> outcomes(kClients);
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < kClients; ++k) {
    threads.emplace_back([&, k] {
      for (int n = 0; !stop.load(); ++n) {
        char id[40];
        std::snprintf(id, sizeof(id), "%08x-0000-4000-8000-%012x", k, n);
        auto [st, body] = a.Post("restart-" + std::to_string(k),
                                 {{"type", "load"}, {"id", id}, {"data", {{"n", n}}}});
        outcomes[k].push_back({id, st});
        sent.fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(Eventually([&] { return sent.load() >= 200; }, 20));
  ASSERT_EQ(cluster_.Restart(), "");
  const int at_restart = sent.load();
  // The server reconnects by itself: requests succeed again soon after.
  ASSERT_TRUE(Eventually([&] { return sent.load() >= at_restart + 200; }, 30));
  stop = true;
  for (std::thread& t : threads) t.join();

  int ok = 0, unavailable = 0, unknown = 0;
  for (int k = 0; k < kClients; ++k) {
    std::set<std::string> stored;
    for (uint64_t from = 1;;) {  // pages end at a byte budget: follow them
      json page = GetJson(a.port, "/streams/restart-" + std::to_string(k) +
                                      "?limit=1000&from_version=" + std::to_string(from));
      ASSERT_TRUE(page.is_object()) << page.dump();
      for (const json& e : page["events"]) stored.insert(e.value("id", ""));
      if (page["next_from_version"].is_null()) break;
      from = page["next_from_version"].get<uint64_t>();
    }
    for (const Outcome& o : outcomes[k]) {
      if (o.status == 200 || o.status == 201) {
        ++ok;
        EXPECT_TRUE(stored.count(o.id)) << "acknowledged, yet not stored: " << o.id;
      } else if (o.status == 503) {
        ++unavailable;
        EXPECT_FALSE(stored.count(o.id)) << "told 503 (not stored), yet stored: " << o.id;
      } else {
        EXPECT_EQ(o.status, 500) << o.id;  // Unknown: either way
        ++unknown;
      }
    }
    // The last requests, after the restart, went through.
    ASSERT_FALSE(outcomes[k].empty());
    EXPECT_EQ(outcomes[k].back().status, 201) << "client " << k;
  }
  std::printf("restart under load: %d stored, %d told 503 (not stored), %d told 500 (unknown)\n",
              ok, unavailable, unknown);
  EXPECT_GE(ok, 400);
  EXPECT_TRUE(a.Healthy());
}

// Every event of the store behind `port`, following GET /all's pages.
json AllEvents(int port) {
  json out = json::array();
  for (int from = 1;;) {
    json page = GetJson(port, "/all?limit=1000&from_position=" + std::to_string(from));
    if (!page.is_object()) return nullptr;
    for (const json& e : page["events"]) out.push_back(e);
    if (page["next_from_position"].is_null()) return out;
    from = page["next_from_position"].get<int>();
  }
}

TEST_F(ServerPgTest, ImportFromADataDirectoryThenServeIt) {
  const std::string data = dir_ + "/data";
  json before;
  {
    metrics::test_support::EventStoreServer embedded(EVENTSTORE_SERVER, data);
    ASSERT_GT(embedded.port(), 0);
    httplib::Client c("127.0.0.1", embedded.port());
    auto post = [&](const std::string& stream, const json& body) {
      auto r = c.Post("/streams/" + stream + "/events", body.dump(), "application/json");
      ASSERT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
    };
    post("team-red", {{"type", "team.registered"},
                      {"id", "11111111-2222-3333-4444-555555555555"},
                      {"data", {{"team", "red"}, {"name", "Red"}}}});
    for (int r = 0; r < 30; ++r) {  // 100 events a request: the embedded store fsyncs each
      json events = json::array();
      for (int i = 50 * r; i < 50 * (r + 1); ++i) {
        events.push_back({{"type", "load"}, {"data", {{"i", i}}}});
        events.push_back({{"type", "x"}, {"data", i}});
      }
      post("load-" + std::to_string(r % 5), events);
    }
    before = AllEvents(embedded.port());
    ASSERT_EQ(before.size(), 3001u);
  }  // stopped: the directory is free
  const std::string conninfo = cluster_.ConnInfo("server_pg");
  auto import = [&] {
    std::string out;
    const int rc = metrics::test_support::RunShell(
        std::string(EVENTSTORE_SERVER) + " --pg-url '" + conninfo + "' --import-from " + data,
        &out);
    return std::make_pair(rc, out);
  };
  auto [rc, out] = import();
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("imported 3001 events"), std::string::npos) << out;
  // Again: nothing left to copy.
  std::tie(rc, out) = import();
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("imported 0 events"), std::string::npos) << out;
  // Without --pg-url, or from a directory that is not there: a clear refusal.
  ASSERT_NE(metrics::test_support::RunShell(
                std::string(EVENTSTORE_SERVER) + " --import-from " + data, &out),
            0);
  EXPECT_NE(out.find("give both"), std::string::npos) << out;

  Server pg(conninfo, dir_, "pg");
  ASSERT_TRUE(Eventually([&] { return pg.Healthy(); }, 20))
      << "the PostgreSQL-backed server did not start";
  EXPECT_EQ(AllEvents(pg.port), before);  // positions, versions, ids, data, timestamps
  EXPECT_TRUE(Eventually(
      [&] {
        json teams = GetJson(pg.port, "/projections/teams");
        return teams.is_array() && teams.size() == 1 && teams[0]["id"] == "red";
      },
      10));
  auto [st, body] =
      pg.Post("team-red", {{"type", "team.renamed"}, {"data", 1}}, "?expected_version=1");
  EXPECT_EQ(st, 201) << body.dump();
  EXPECT_EQ(body["first_position"], 3002);
}

}  // namespace
