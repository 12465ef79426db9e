// Outbound calls against a loopback receiver that answers 200, fails, rate-limits with
// Retry-After, or hangs: what the client does (attempts, waits) and what the metrics count.
#include "instrument/outbound.h"

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/peers.h"

namespace metrics::instrument {
namespace {

using namespace std::chrono_literals;

class Receiver {
 public:
  Receiver() {
    server_.Get("/ok", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("fine", "text/plain");
    });
    server_.Post("/fail-twice", [this](const httplib::Request& req, httplib::Response& res) {
      bodies_.push_back(req.body);
      res.status = ++fails_ <= 2 ? 500 : 200;
    });
    server_.Post("/busy", [this](const httplib::Request&, httplib::Response& res) {
      if (++busy_ == 1) {
        res.status = 429;
        res.set_header("Retry-After", "1");
      }
    });
    server_.Get("/busy-long", [](const httplib::Request&, httplib::Response& res) {
      res.status = 429;
      res.set_header("Retry-After", "3600");
    });
    server_.Get("/hang", [](const httplib::Request&, httplib::Response&) {
      std::this_thread::sleep_for(1500ms);
    });
    server_.Get("/bad", [](const httplib::Request&, httplib::Response& res) { res.status = 404; });
    server_.Put("/metrics/job/nightly",
                [this](const httplib::Request& req, httplib::Response& res) {
                  pushed_ = req.body;
                  pushed_type_ = req.get_header_value("Content-Type");
                  res.status = ++pushes_ == 1 ? 503 : 200;
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<std::string> bodies_;
  std::atomic<int> fails_{0}, busy_{0}, pushes_{0};
  std::string pushed_, pushed_type_;

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

double Value(const Registry& r, const std::string& family, const std::vector<std::string>& labels) {
  const Snapshot s = r.Collect();
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name != family) continue;
    for (size_t k = 0; k < f.samples.size(); ++k) {
      if (*f.samples[k].label_values == labels) {
        return f.desc->type == MetricType::kHistogram ? f.histograms[k].count
                                                      : f.samples[k].Total();
      }
    }
  }
  return 0;
}

struct Fixture {
  Registry registry;
  std::unique_ptr<OutboundMetrics> metrics = *OutboundMetrics::Create(registry);
  std::vector<std::chrono::milliseconds> waits;
  std::unique_ptr<OutboundClient> Client(OutboundOptions o) {
    auto c = OutboundClient::Create(metrics.get(), std::move(o));
    EXPECT_TRUE(c.ok()) << c.status();
    (*c)->SetSleepForTesting([this](std::chrono::milliseconds d) { waits.push_back(d); });
    return *std::move(c);
  }
};

TEST(OutboundTest, CountsAnswersAndRetriesServerErrorsWithBackoff) {
  Receiver rx;
  Fixture f;
  auto c = f.Client({.target = "bot",
                     .base_url = rx.url(),
                     .max_attempts = 4,
                     .initial_backoff = 100ms,
                     .max_backoff = 150ms});
  OutboundReply ok = c->Send("GET", "/ok");
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.body, "fine");
  EXPECT_EQ(ok.attempts, 1);
  OutboundReply r = c->Send("POST", "/fail-twice", R"({"n":1})", "application/json");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_THAT(rx.bodies_, ::testing::ElementsAre(R"({"n":1})", R"({"n":1})", R"({"n":1})"));
  ASSERT_EQ(f.waits.size(), 2u);  // full jitter within the doubling, capped, backoff
  EXPECT_LE(f.waits[0], 100ms);
  EXPECT_LE(f.waits[1], 150ms);
  EXPECT_EQ(c->Send("GET", "/bad").attempts, 1);  // a 4xx is the answer, not a failure to retry

  EXPECT_EQ(Value(f.registry, "outbound_requests_total", {"bot", "GET", "200"}), 1);
  EXPECT_EQ(Value(f.registry, "outbound_requests_total", {"bot", "POST", "500"}), 2);
  EXPECT_EQ(Value(f.registry, "outbound_requests_total", {"bot", "POST", "200"}), 1);
  EXPECT_EQ(Value(f.registry, "outbound_requests_total", {"bot", "GET", "404"}), 1);
  EXPECT_EQ(Value(f.registry, "outbound_retries_total", {"bot"}), 2);
  EXPECT_EQ(Value(f.registry, "outbound_request_duration_seconds", {"bot"}), 5);
}

TEST(OutboundTest, HonoursRetryAfterAndGivesUpOnTooLongAWait) {
  Receiver rx;
  Fixture f;
  auto c =
      f.Client({.target = "bot", .base_url = rx.url(), .max_attempts = 3, .max_retry_after = 10s});
  OutboundReply r = c->Send("POST", "/busy", "x", "text/plain");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_THAT(f.waits, ::testing::ElementsAre(1000ms));  // what Retry-After asked, not a backoff
  OutboundReply later = c->Send("GET", "/busy-long");
  EXPECT_EQ(later.status, 429);  // an hour is more than max_retry_after: no waiting at all
  EXPECT_EQ(later.attempts, 1);
  EXPECT_EQ(f.waits.size(), 1u);
  EXPECT_EQ(Value(f.registry, "outbound_requests_total", {"bot", "POST", "429"}), 1);
  EXPECT_EQ(Value(f.registry, "outbound_requests_total", {"bot", "GET", "429"}), 1);
}

TEST(OutboundTest, TransportErrorsAreCountedByReason) {
  Receiver rx;
  Fixture f;
  auto hang = f.Client({.target = "slow", .base_url = rx.url(), .timeout = 200ms});
  OutboundReply r = hang->Send("GET", "/hang");
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
  EXPECT_EQ(Value(f.registry, "outbound_request_errors_total", {"slow", "read"}), 1);

  const int closed = metrics::test_support::FreePort();  // nothing listens there
  auto refused = f.Client({.target = "gone",
                           .base_url = "http://127.0.0.1:" + std::to_string(closed),
                           .max_attempts = 2});
  OutboundReply g = refused->Send("GET", "/");
  EXPECT_EQ(g.status, 0);
  EXPECT_EQ(g.attempts, 2);
  EXPECT_EQ(Value(f.registry, "outbound_request_errors_total", {"gone", "connect"}), 2);
  EXPECT_EQ(Value(f.registry, "outbound_retries_total", {"gone"}), 1);
  EXPECT_EQ(Value(f.registry, "outbound_request_duration_seconds", {"gone"}), 2);
}

// The Pushgateway client through an instrumented client: the push is retried and counted.
TEST(OutboundTest, PusherGoesThroughTheInstrumentedClient) {
  Receiver rx;
  Fixture f;
  std::shared_ptr<OutboundClient> c =
      f.Client({.target = "pushgateway", .base_url = rx.url(), .max_attempts = 3});
  auto pusher =
      exposition::Pusher::Create({.url = rx.url(), .job = "nightly", .sender = PushSenderFor(c)});
  ASSERT_TRUE(pusher.ok()) << pusher.status();
  Registry job;
  job.AddCounter({.name = "runs_total", .help = "Runs."})->WithLabelValues().Inc(3);
  EXPECT_TRUE(pusher->Push(job.Collect()).ok());
  EXPECT_EQ(rx.pushes_.load(), 2);
  EXPECT_THAT(rx.pushed_, ::testing::HasSubstr("runs_total 3\n"));
  EXPECT_THAT(rx.pushed_type_, ::testing::HasSubstr("version=0.0.4"));
  EXPECT_EQ(Value(f.registry, "outbound_requests_total", {"pushgateway", "PUT", "503"}), 1);
  EXPECT_EQ(Value(f.registry, "outbound_requests_total", {"pushgateway", "PUT", "200"}), 1);
  EXPECT_EQ(Value(f.registry, "outbound_retries_total", {"pushgateway"}), 1);
  // A gateway that keeps failing: the error names the status, as without a sender.
  auto failing =
      exposition::Pusher::Create({.url = rx.url(), .job = "other", .sender = PushSenderFor(c)});
  absl::Status s = failing->Push(job.Collect());
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("404"));
}

TEST(OutboundTest, TargetIsANameNeverAUrl) {
  Registry r;
  auto m = *OutboundMetrics::Create(r);
  for (const std::string& bad : std::vector<std::string>{"", "http://hooks.slack.com/x", "a b",
                                                         std::string(65, 'a'), "\xc3\xa9"}) {
    EXPECT_FALSE(OutboundClient::Create(m.get(), {.target = bad, .base_url = "http://x"}).ok())
        << bad;
  }
  EXPECT_FALSE(OutboundClient::Create(m.get(), {.target = "ok", .base_url = "ftp://x"}).ok());
  EXPECT_TRUE(
      OutboundClient::Create(m.get(), {.target = "slack.hooks-1", .base_url = "http://x"}).ok());
}

TEST(OutboundTest, ParsesRetryAfterSecondsAndDates) {
  const auto now = std::chrono::system_clock::from_time_t(784111777);  // 1994-11-06 08:49:37 UTC
  EXPECT_EQ(ParseRetryAfter("120", now), std::chrono::milliseconds(120000));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), std::chrono::milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", now),
            std::chrono::milliseconds(30000));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", now), std::chrono::milliseconds(0));
  EXPECT_FALSE(ParseRetryAfter("soon", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("-5", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("", now).has_value());
}

}  // namespace
}  // namespace metrics::instrument
