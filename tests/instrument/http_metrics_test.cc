// Route templates and the HTTP request metrics, through a real server and client.
#include "instrument/http_metrics.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <thread>

#include "engine/registry.h"
#include "exposition/guarded_server.h"
#include "tests/support/peers.h"

namespace metrics::instrument {
namespace {

TEST(RouteTableTest, MatchesTemplatesSegmentBySegment) {
  RouteTable t;
  ASSERT_TRUE(t.Add("/streams/{stream}/events").ok());
  ASSERT_TRUE(t.Add("/streams/{stream}").ok());
  ASSERT_TRUE(t.Add("/all").ok());
  ASSERT_TRUE(t.Add("/").ok());
  auto match = [&](std::string_view p) {
    const std::string* m = t.Match(p);
    return m == nullptr ? std::string("none") : *m;
  };
  EXPECT_EQ(match("/streams/a/events"), "/streams/{stream}/events");
  EXPECT_EQ(match("/streams/a"), "/streams/{stream}");
  EXPECT_EQ(match("/all"), "/all");
  EXPECT_EQ(match("/"), "/");
  EXPECT_EQ(match("/streams//events"), "none");  // a parameter is never empty
  EXPECT_EQ(match("/streams/a/events/x"), "none");
  EXPECT_EQ(match("/streams"), "none");
  EXPECT_EQ(match("/all/"), "none");
  EXPECT_EQ(match("/alll"), "none");
  EXPECT_EQ(match(""), "none");
  EXPECT_EQ(match("all"), "none");
}

TEST(RouteTableTest, RejectsMalformedTemplates) {
  RouteTable t;
  EXPECT_FALSE(t.Add("streams").ok());
  EXPECT_FALSE(t.Add("/a/{}").ok());
  EXPECT_FALSE(t.Add("/a/{b").ok());
  EXPECT_FALSE(t.Add("/a/x{b}").ok());
  EXPECT_TRUE(t.Add("/a/{b}").ok());
  EXPECT_FALSE(t.Add("/a/{b}").ok());  // twice
}

TEST(RouteTableTest, RegexMatchesWhatTheTemplateMatches) {
  const std::regex re(RouteTable::ToRegex("/streams/{stream}/events.v1"));
  std::smatch m;
  std::string ok = "/streams/team-red/events.v1";
  ASSERT_TRUE(std::regex_match(ok, m, re));
  EXPECT_EQ(m[1], "team-red");
  EXPECT_FALSE(std::regex_match(std::string("/streams/a/b/events.v1"), re));
  EXPECT_FALSE(std::regex_match(std::string("/streams/a/eventsXv1"), re));  // '.' is literal
}

using Values = std::vector<std::string>;

const FamilySnapshot* Find(const Snapshot& snap, const std::string& family) {
  for (const auto& f : snap.families) {
    if (f.desc->name == family) return &f;
  }
  return nullptr;
}

// The counter or gauge value of the series with these label values, -1 if absent.
double Value(const Snapshot& snap, const std::string& family, const Values& values) {
  const FamilySnapshot* f = Find(snap, family);
  if (f == nullptr) return -1;
  for (const auto& s : f->samples) {
    if (*s.label_values == values) return s.Total();
  }
  return -1;
}

const HistogramSample* Histogram(const Snapshot& snap, const std::string& family,
                                 const Values& values) {
  const FamilySnapshot* f = Find(snap, family);
  if (f == nullptr) return nullptr;
  for (size_t i = 0; i < f->samples.size(); ++i) {
    if (*f->samples[i].label_values == values) return &f->histograms[i];
  }
  return nullptr;
}

TEST(HttpMetricsTest, CountsTimesAndSizesByRouteTemplate) {
  Registry reg;
  RouteTable routes;
  ASSERT_TRUE(routes.Add("/items/{id}").ok());
  auto m = HttpMetrics::Create(reg, routes);
  ASSERT_TRUE(m.ok()) << m.status();
  exposition::GuardedServer server({.threads = 2, .max_connections = 4});
  (*m)->Install(server);
  server.Get(RouteTable::ToRegex("/items/{id}"),
             [](const httplib::Request& req, httplib::Response& res) {
               EXPECT_EQ(HttpMetrics::CurrentHandler(), "/items/{id}");
               if (req.matches[1] == "missing") {
                 res.status = 404;
                 return;
               }
               res.set_content(std::string(100, 'x'), "text/plain");
             });
  server.Post(RouteTable::ToRegex("/items/{id}"),
              [](const httplib::Request&, httplib::Response& res) { res.status = 201; });
  const int port = server.Bind("127.0.0.1", 0);
  std::thread t([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  httplib::Client c("127.0.0.1", port);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.Get("/items/" + std::to_string(i)));
  ASSERT_TRUE(c.Get("/items/missing"));
  ASSERT_TRUE(c.Post("/items/7", std::string(300, 'y'), "text/plain"));
  // A scanner's random paths all land in one series.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(c.Get("/wp-admin/" + std::to_string(i) + ".php"));
  // A method cpp-httplib does not route is still counted, with a bounded label.
  test_support::RawConnection raw(port);
  raw.Send("BREW /items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  raw.ReadAll();
  server.stop();
  t.join();

  const Snapshot snap = reg.Collect();
  EXPECT_EQ(Value(snap, "http_requests_total", {"/items/{id}", "GET", "200"}), 3);
  EXPECT_EQ(Value(snap, "http_requests_total", {"/items/{id}", "GET", "404"}), 1);
  EXPECT_EQ(Value(snap, "http_requests_total", {"/items/{id}", "POST", "201"}), 1);
  EXPECT_EQ(Value(snap, "http_requests_total", {"other", "GET", "404"}), 20);
  EXPECT_EQ(Value(snap, "http_requests_total", {"other", "other", "400"}), 1);
  EXPECT_EQ(Find(snap, "http_requests_total")->samples.size(), 5u);
  const HistogramSample* d =
      Histogram(snap, "http_request_duration_seconds", {"/items/{id}", "GET"});
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->count, 4u);
  EXPECT_GT(d->sum, 0);
  const HistogramSample* rs = Histogram(snap, "http_response_size_bytes", {"/items/{id}"});
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(rs->count, 5u);
  EXPECT_EQ(rs->sum, 300);  // 3 bodies of 100 bytes, the 404 and the 201 empty
  const HistogramSample* qs = Histogram(snap, "http_request_size_bytes", {"/items/{id}"});
  ASSERT_NE(qs, nullptr);
  EXPECT_EQ(qs->sum, 300);  // the POST's body
  EXPECT_EQ(Value(snap, "http_requests_in_flight", {}), 0);
}

TEST(HttpMetricsTest, SharesFamiliesAcrossInstancesOnOneRegistry) {
  Registry reg;
  auto a = HttpMetrics::Create(reg, RouteTable());
  auto b = HttpMetrics::Create(reg, RouteTable());
  EXPECT_TRUE(a.ok());
  EXPECT_TRUE(b.ok());
  // A clashing definition is refused.
  Registry other;
  ASSERT_TRUE(other.AddGauge({.name = "http_requests_total", .help = "x"}).ok());
  EXPECT_FALSE(HttpMetrics::Create(other, RouteTable()).ok());
}

}  // namespace
}  // namespace metrics::instrument
