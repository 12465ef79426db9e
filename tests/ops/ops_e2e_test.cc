// Operating the store, end to end: our eventstore-server with its demo load, scraped by Debian's
// Prometheus 2.42 with deploy/prometheus.yml and rules/event-store.rules.yml as shipped (only the
// intervals, the target and the paths substituted; every `for:` shortened to 5s, since the
// promtool unit tests in rules/ pin the real durations). Every PromQL expression of every panel
// of dashboards/event-store.json and every recording rule must return data; the projection-lag
// alert must fire while the "teams" projection is slowed on purpose and resolve once it catches up.
#include <atomic>
#include <chrono>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "tests/support/peers.h"

namespace {

using namespace ::metrics::test_support;
using nlohmann::json;

const std::string kSource = METRICS_SOURCE_DIR;

// Replaces the one occurrence of `from`; fails the test when there is not exactly one, so the
// test notices when the shipped file drifts from what it substitutes.
void ReplaceOnce(std::string& s, const std::string& from, const std::string& to) {
  size_t at = s.find(from);
  ASSERT_NE(at, std::string::npos) << "'" << from << "' not found in:\n" << s;
  ASSERT_EQ(s.find(from, at + 1), std::string::npos) << "'" << from << "' twice in:\n" << s;
  s.replace(at, from.size(), to);
}

// Every target expression of every panel (rows may nest panels).
void CollectExprs(const json& panels, std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& p : panels) {
    if (p.contains("panels")) CollectExprs(p["panels"], out);
    for (const auto& t : p.value("targets", json::array())) {
      if (t.contains("expr")) out.emplace_back(p.value("title", "?"), t["expr"]);
    }
  }
}

// Grafana's variables as a user with "All" selected would get them, at a 1m rate interval.
std::string SubstituteGrafanaVariables(std::string expr) {
  static const std::pair<std::regex, std::string> kVars[] = {
      {std::regex(R"(\$\{?__rate_interval\}?)"), "1m"},
      {std::regex(R"(\$\{?__interval\}?)"), "15s"},
      {std::regex(R"(\$\{?__range\}?)"), "5m"},
      {std::regex(R"(\$\{?job\}?)"), ".*"},
      {std::regex(R"(\$\{?instance\}?)"), ".*"},
  };
  for (const auto& [re, value] : kVars) expr = std::regex_replace(expr, re, value);
  return expr;
}

// Every "datasource" object anywhere in the dashboard, with where it is.
void CollectDatasources(const json& j, const std::string& where,
                        std::vector<std::pair<std::string, json>>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (k == "datasource") out.emplace_back(where, v);
      CollectDatasources(v, where + "/" + k, out);
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i)
      CollectDatasources(j[i], where + "/" + std::to_string(i), out);
  }
}

// Importable anywhere: a datasource variable and no datasource UID of one Grafana in particular.
TEST(OpsDashboardTest, UsesTheDatasourceVariableEverywhere) {
  json d = json::parse(ReadFile(kSource + "/dashboards/event-store.json"), nullptr, false);
  ASSERT_FALSE(d.is_discarded()) << "dashboards/event-store.json is not JSON";
  EXPECT_GE(d.value("schemaVersion", 0), 36);  // the datasource-object form of current Grafana
  EXPECT_FALSE(d.contains("__inputs")) << "an import-time input instead of a variable";
  bool has_var = false;
  for (const auto& v : d["templating"]["list"]) {
    if (v.value("name", "") == "datasource") {
      has_var = true;
      EXPECT_EQ(v.value("type", ""), "datasource");
      EXPECT_EQ(v.value("query", ""), "prometheus");
    }
  }
  EXPECT_TRUE(has_var) << "no ${datasource} template variable";
  std::vector<std::pair<std::string, json>> sources;
  CollectDatasources(d["panels"], "panels", sources);
  ASSERT_FALSE(sources.empty());
  for (const auto& [where, ds] : sources) {
    ASSERT_TRUE(ds.is_object()) << where << ": " << ds;
    EXPECT_EQ(ds.value("uid", ""), "${datasource}") << where << ": " << ds;
  }
}

std::set<std::string> AlertNames(const json& alerts, const std::string& state) {
  std::set<std::string> names;
  if (!alerts.is_array()) return names;
  for (const auto& a : alerts) {
    if (a.value("state", "") == state) names.insert(a["labels"].value("alertname", ""));
  }
  return names;
}

bool LagAlertFor(const json& alerts, const std::string& projection, const std::string& state) {
  if (!alerts.is_array()) return false;
  for (const auto& a : alerts) {
    if (a["labels"].value("alertname", "") == "EventStoreProjectionLagging" &&
        a["labels"].value("projection", "") == projection && a.value("state", "") == state) {
      return true;
    }
  }
  return false;
}

// Run twice: with Prometheus as shipped (text/OpenMetrics scrapes, classic buckets) and with
// --enable-feature=native-histograms,exemplar-storage (protobuf scrapes; 2.42 then stores only the
// native part of our histograms, so every latency panel and rule must work from either).
class OpsE2ETest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Prometheus, OpsE2ETest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Native" : "Classic"; });

TEST_P(OpsE2ETest, DashboardAndRulesWorkAgainstRealPrometheusAndLagAlertFiresAndResolves) {
  const bool native = GetParam();
  if (!Executable(PrometheusServer::kBinary)) {
    GTEST_SKIP() << "SKIPPED LOUDLY: " << PrometheusServer::kBinary
                 << " missing (apt-get install prometheus)";
  }
  std::string rules = ReadFile(kSource + "/rules/event-store.rules.yml");
  ASSERT_FALSE(rules.empty());
  const std::regex for_re(R"((\n[ \t]*for:[ \t]*)[0-9a-z]+)");
  ASSERT_TRUE(std::regex_search(rules, for_re));
  rules = std::regex_replace(rules, for_re, "$015s");

  std::string config = ReadFile(kSource + "/deploy/prometheus.yml");
  ReplaceOnce(config, "scrape_interval: 15s", "scrape_interval: 1s");
  ReplaceOnce(config, "evaluation_interval: 15s", "evaluation_interval: 1s");
  ReplaceOnce(config, "../rules/event-store.rules.yml", "rules.yml");

  // 100 events/s against a projection that takes 20 ms per event (50/s) for the first 40 s: its
  // lag grows by ~0.5 s per second, then it catches up in well under a second.
  const std::string data_dir = TempDir("ops-e2e");
  EventStoreServer server(EVENTSTORE_SERVER, data_dir,
                          {"--fsync", "interval", "--demo-rate", "100", "--test-slow-projection-ms",
                           "20", "--test-slow-projection-for-s", "40"});
  ASSERT_GT(server.port(), 0) << "eventstore-server did not start";
  const auto slow_until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  ReplaceOnce(config, "'127.0.0.1:8080'", "'127.0.0.1:" + std::to_string(server.port()) + "'");
  PrometheusServer prom(config, {{"rules.yml", rules}},
                        native ? std::vector<std::string>{"--enable-feature=native-histograms,"
                                                          "exemplar-storage"}
                               : std::vector<std::string>{});

  ASSERT_FALSE(prom.WaitFor("up{job=\"eventstore\"} == 1", 60).is_null())
      << "target never up; prometheus log:\n"
      << prom.Log();

  // API traffic as clients make it (201, 200, 404, 409), for the API row and the API alerts.
  std::atomic<bool> stop_traffic{false};
  std::thread traffic([&] {
    httplib::Client c = server.Client();
    c.set_keep_alive(true);
    for (int i = 0; !stop_traffic.load(); ++i) {
      c.Post("/streams/ops-" + std::to_string(i % 5) + "/events", R"({"type":"ops.check"})",
             "application/json");
      c.Get("/streams/ops-0?limit=10");
      c.Get("/streams/no-such-stream");
      c.Post("/streams/ops-0/events?expected_version=no_stream", R"({"type":"ops.check"})",
             "application/json");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      t.join();
    }
  } join_traffic{stop_traffic, traffic};
  EXPECT_FALSE(
      prom.WaitFor("http_requests_total{handler=\"/streams/{stream}/events\",code=\"409\"}", 30)
          .is_null())
      << "the API's request metrics never reached Prometheus";

  // Prometheus asked for protobuf exactly when the native-histogram feature is on.
  const std::string protobuf_scrapes =
      "metrics_scrapes_total{job=\"eventstore\",format=\"protobuf\"} > 0";
  if (native) {
    EXPECT_FALSE(prom.WaitFor(protobuf_scrapes, 30).is_null())
        << prom.Query("metrics_scrapes_total");
  } else {
    EXPECT_TRUE(prom.Query(protobuf_scrapes).empty()) << prom.Query("metrics_scrapes_total");
  }

  // The lag alert: pending, then firing, while the projection is slow; nothing else fires.
  json alerts;
  ASSERT_TRUE(
      Eventually([&] { return LagAlertFor(alerts = prom.Alerts(), "teams", "firing"); }, 35))
      << "EventStoreProjectionLagging{projection=\"teams\"} never fired; alerts: " << alerts
      << "\nlag: " << prom.Query("projection_lag_seconds") << "\nprometheus log:\n"
      << prom.Log();
  ASSERT_LT(std::chrono::steady_clock::now(), slow_until) << "fired only after the slow phase";
  for (const auto& name : AlertNames(alerts, "firing")) {
    EXPECT_EQ(name, "EventStoreProjectionLagging") << "unexpected alert firing: " << alerts;
  }

  // Every recording rule: its expression answers, and so does the series it records.
  json groups = prom.RuleGroups();
  ASSERT_TRUE(groups.is_array() && !groups.empty()) << "no rule groups loaded:\n" << prom.Log();
  int recording = 0, alerting = 0;
  for (const auto& g : groups) {
    for (const auto& r : g["rules"]) {
      EXPECT_EQ(r.value("health", ""), "ok") << r;
      if (r["type"] == "alerting") {
        ++alerting;
        continue;
      }
      ++recording;
      const std::string query = r["query"], name = r["name"];
      // With native histograms there are no classic bucket series: these records stay empty
      // (the quantile records fall back to the native data instead).
      if (native && name.find("_bucket:rate") != std::string::npos) {
        EXPECT_TRUE(prom.Query(query).empty()) << name << " has data: classic buckets stored?";
        continue;
      }
      EXPECT_FALSE(prom.WaitFor(query, 30).is_null())
          << "recording rule " << name << " = " << query << " returned nothing; "
          << prom.QueryError(query);
      EXPECT_FALSE(prom.WaitFor(name, 30).is_null()) << "series " << name << " never recorded";
    }
  }
  EXPECT_GE(recording, 3);
  EXPECT_GE(alerting, 7);  // the store's five and the API's two

  // Every panel of the dashboard.
  json dashboard = json::parse(ReadFile(kSource + "/dashboards/event-store.json"), nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded()) << "dashboards/event-store.json is not JSON";
  std::vector<std::pair<std::string, std::string>> exprs;
  CollectExprs(dashboard["panels"], exprs);
  ASSERT_GE(exprs.size(), 10u);
  for (const auto& [title, expr] : exprs) {
    const std::string q = SubstituteGrafanaVariables(expr);
    ASSERT_EQ(q.find('$'), std::string::npos) << "panel '" << title << "' uses a variable: " << q;
    EXPECT_FALSE(prom.WaitFor(q, 30).is_null())
        << "panel '" << title << "': " << q << " returned nothing; " << prom.QueryError(q);
  }

  // Once the slow phase ends the projection catches up: the alert resolves.
  ASSERT_TRUE(Eventually(
      [&] {
        alerts = prom.Alerts();
        return alerts.is_array() && std::chrono::steady_clock::now() > slow_until &&
               !LagAlertFor(alerts, "teams", "firing") && !LagAlertFor(alerts, "teams", "pending");
      },
      90))
      << "lag alert did not resolve; alerts: " << alerts
      << "\nlag: " << prom.Query("projection_lag_seconds");
  EXPECT_TRUE(AlertNames(alerts, "firing").empty()) << alerts;
  auto lag = prom.Query("projection_lag_seconds{projection=\"teams\"} < 1");
  EXPECT_TRUE(lag.is_array() && lag.size() == 1) << prom.Query("projection_lag_seconds");
  EXPECT_EQ(server.Stop(SIGTERM), 0);
  std::string out;
  RunShell("rm -rf " + data_dir, &out);
}

}  // namespace
