// Crash torture: concurrent HTTP appenders that send event ids and retry on any error, the
// server SIGKILLed at a random moment, restarted on the same data, again and again. In the end
// every acknowledged event is present exactly once, in order per stream, no event appears that
// was never sent, and the teams projection rebuilt from the log holds everything it served before
// each kill. Rounds: 20 (10 over PostgreSQL), or CRASH_TORTURE_ROUNDS. Over the embedded store,
// and over PostgreSQL (--pg-url) where libpq and the server binaries are there.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/peers.h"
#ifdef EVENTSTORE_TEST_POSTGRES
#include "tests/support/postgres_cluster.h"
#endif

namespace {

using metrics::test_support::EventStoreServer;
using metrics::test_support::TempDir;
using nlohmann::json;

constexpr int kClients = 4;

std::string Uuid(int client, int n, int i) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-0000-4000-8000-%012x", client, n * 4 + i);
  return buf;
}

struct Request {
  int n = 0;
  std::vector<std::string> ids;
  std::string body;
};

Request MakeRequest(int client, int n) {
  Request r;
  r.n = n;
  json events = json::array();
  const int count = 1 + n % 3;
  for (int i = 0; i < count; ++i) {
    r.ids.push_back(Uuid(client, n, i));
    const std::string team =
        "c" + std::to_string(client) + "-" + std::to_string(n) + "-" + std::to_string(i);
    events.push_back({{"type", "team.registered"},
                      {"id", r.ids.back()},
                      {"data", {{"team", team}, {"name", "Team " + team}}}});
  }
  r.body = events.dump();
  return r;
}

// One appender: its own stream, one request at a time, the same request (same ids) until a 2xx.
struct Client {
  int k = 0;
  int next_n = 0;
  std::optional<Request> pending;  // sent, not yet acknowledged: in doubt across a kill
  std::vector<std::string> acked;  // ids of acknowledged events, in order

  // Runs until `stop`; false on an answer that should never come (a 4xx).
  bool Run(int port, const std::atomic<bool>& stop, std::string* problem) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(1);
    c.set_read_timeout(5);
    c.set_keep_alive(true);
    const std::string path = "/streams/c" + std::to_string(k) + "/events";
    while (!stop.load()) {
      if (!pending) pending = MakeRequest(k, next_n++);
      auto r = c.Post(path, pending->body, "application/json");
      if (r && (r->status == 200 || r->status == 201)) {
        acked.insert(acked.end(), pending->ids.begin(), pending->ids.end());
        pending.reset();
        continue;
      }
      if (r && r->status >= 400 && r->status < 500) {
        *problem =
            "client " + std::to_string(k) + " got " + std::to_string(r->status) + ": " + r->body;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // killed, or 5xx: retry
    }
    return true;
  }
};

json Get(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(10);
  auto r = c.Get(path);
  return r && r->status == 200 ? json::parse(r->body) : json();
}

// Every event of a stream, following the pages.
std::vector<json> ReadStream(int port, const std::string& stream) {
  std::vector<json> out;
  std::string path = "/streams/" + stream + "?limit=1000";
  while (true) {
    json page = Get(port, path);
    if (page.is_null()) break;
    for (auto& e : page["events"]) out.push_back(e);
    if (page["next_from_version"].is_null()) break;
    path = "/streams/" + stream +
           "?limit=1000&from_version=" + std::to_string(page["next_from_version"].get<uint64_t>());
  }
  return out;
}

// `extra`: the server's store arguments (none: the embedded store in `dir`).
void Torture(int rounds, const std::string& dir, const std::vector<std::string>& extra) {
  const unsigned seed = static_cast<unsigned>(
      std::chrono::steady_clock::now().time_since_epoch().count() & 0xffffffff);
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::vector<Client> clients(kClients);
  for (int k = 0; k < kClients; ++k) clients[k].k = k;
  std::map<std::string, json> served_teams;  // what the projection served before the kills

  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::vector<std::string> args = extra;
    args.insert(args.end(), {"--http-threads", "8"});
    EventStoreServer server(EVENTSTORE_SERVER, dir, args);
    ASSERT_GT(server.port(), 0) << "the server did not come back after a kill";
    // The projection rebuilt from the log holds at least what it served before the last kill.
    {
      json teams;
      ASSERT_TRUE(metrics::test_support::Eventually(
          [&] {
            teams = Get(server.port(), "/projections/teams");
            return teams.is_array() && teams.size() >= served_teams.size();
          },
          20));
      std::map<std::string, json> now;
      for (auto& t : teams) now[t["id"]] = t;
      for (const auto& [id, t] : served_teams) {
        ASSERT_TRUE(now.count(id)) << "team " << id << " served before the kill, gone after it";
        EXPECT_EQ(now[id], t);
      }
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    std::vector<std::string> problems(kClients);
    std::atomic<bool> ok{true};
    for (int k = 0; k < kClients; ++k) {
      threads.emplace_back([&, k] {
        if (!clients[k].Run(server.port(), stop, &problems[k])) ok = false;
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
    json teams = Get(server.port(), "/projections/teams");
    if (teams.is_array()) {
      for (auto& t : teams) served_teams[t["id"]] = t;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
    EXPECT_EQ(server.Stop(SIGKILL), -SIGKILL);  // at a random moment of the appends
    stop = true;
    for (auto& t : threads) t.join();
    for (const auto& p : problems) ASSERT_TRUE(p.empty()) << p;
    ASSERT_TRUE(ok.load());
  }

  // A last restart: settle every request still in doubt (same ids), then check the streams.
  EventStoreServer server(EVENTSTORE_SERVER, dir, extra);
  ASSERT_GT(server.port(), 0);
  size_t total = 0;
  for (Client& c : clients) {
    if (c.pending) {
      httplib::Client http("127.0.0.1", server.port());
      http.set_read_timeout(10);
      auto r = http.Post("/streams/c" + std::to_string(c.k) + "/events", c.pending->body,
                         "application/json");
      ASSERT_TRUE(r);
      ASSERT_TRUE(r->status == 200 || r->status == 201) << r->status << " " << r->body;
      c.acked.insert(c.acked.end(), c.pending->ids.begin(), c.pending->ids.end());
      c.pending.reset();
    }
    const std::vector<json> stored = ReadStream(server.port(), "c" + std::to_string(c.k));
    std::vector<std::string> ids;
    for (size_t i = 0; i < stored.size(); ++i) {
      EXPECT_EQ(stored[i]["version"], i + 1);  // dense, in order
      ids.push_back(stored[i].value("id", ""));
    }
    // Exactly the acknowledged events, each once, in the order they were acknowledged: nothing
    // lost, nothing duplicated by the retries, nothing that was never sent.
    EXPECT_EQ(ids, c.acked) << "client " << c.k;
    total += ids.size();
  }
  EXPECT_GT(total, static_cast<size_t>(rounds));  // the rounds did real work
  std::printf("crash torture%s: %d rounds, %zu events acknowledged and found exactly once\n",
              extra.empty() ? "" : " (PostgreSQL)", rounds, total);
}

int Rounds(int otherwise) {
  const char* env = std::getenv("CRASH_TORTURE_ROUNDS");
  return env != nullptr ? std::atoi(env) : otherwise;
}

TEST(CrashTortureTest, AcknowledgedEventsSurviveRandomKillsExactlyOnceAndInOrder) {
  Torture(Rounds(20), TempDir("crash-torture"), {});
}

#ifdef EVENTSTORE_TEST_POSTGRES
// The same over --pg-url: the server is killed, the database is not. Nothing it acknowledged is
// lost (a COMMIT answered before the 2xx), a request in doubt is settled by its retry's event ids,
// and the projections polled from the table come back with everything they served.
TEST(CrashTortureTest, OverPostgresAcknowledgedEventsSurviveRandomKills) {
  using metrics::test_support::PostgresCluster;
  if (!PostgresCluster::Installed()) {
    GTEST_SKIP() << "PostgreSQL 15 binaries not found in " << PostgresCluster::kBinDir;
  }
  PostgresCluster cluster;
  const std::string err = cluster.Start();
  ASSERT_EQ(err, "");
  ASSERT_EQ(cluster.CreateDatabase("torture"), "");
  Torture(Rounds(10), TempDir("crash-torture-pg"), {"--pg-url", cluster.ConnInfo("torture")});
}
#endif

}  // namespace
