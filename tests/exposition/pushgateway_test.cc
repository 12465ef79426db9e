// The Pushgateway client without a Pushgateway: option validation, the group path and its
// base64 encoding, and what reaches the wire (method, path, content type, auth, body) and what a
// non-2xx answer becomes, against an in-process cpp-httplib server.
#include "exposition/pushgateway.h"

#include <httplib.h>

#include <mutex>
#include <string>
#include <thread>

#include "engine/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace metrics::exposition {
namespace {

using ::testing::HasSubstr;

TEST(PusherTest, RejectsBadOptions) {
  auto bad = [](PushOptions o) { return Pusher::Create(std::move(o)).status(); };
  EXPECT_EQ(bad({.url = "127.0.0.1:9091", .job = "j"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad({.url = "ftp://h:1", .job = "j"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad({.url = "http://", .job = "j"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad({.url = "http://h:port", .job = "j"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad({.url = "http://h:", .job = "j"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad({.url = "http://h:1/?x=1", .job = "j"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad({.url = "http://h:1", .job = ""}).message(), HasSubstr("job"));
  EXPECT_THAT(bad({.url = "http://h:1", .job = "j", .grouping = {{"0bad", "v"}}}).message(),
              HasSubstr("0bad"));
  EXPECT_THAT(bad({.url = "http://h:1", .job = "j", .grouping = {{"job", "v"}}}).message(),
              HasSubstr("twice"));
  EXPECT_THAT(
      bad({.url = "http://h:1", .job = "j", .grouping = {{"a", "1"}, {"a", "2"}}}).message(),
      HasSubstr("twice"));
  EXPECT_THAT(bad({.url = "http://h:1", .job = "j\xC3"}).message(), HasSubstr("UTF-8"));
  EXPECT_THAT(bad({.url = "http://h:1", .job = "j", .grouping = {{"a", "\xFF"}}}).message(),
              HasSubstr("UTF-8"));
  // An IPv6 literal with and without a port.
  EXPECT_TRUE(Pusher::Create({.url = "http://[::1]:9091", .job = "j"}).ok());
  EXPECT_TRUE(Pusher::Create({.url = "http://[::1]", .job = "j"}).ok());
}

TEST(PusherTest, GroupPathEncodesValuesThatAreNotPlainSegments) {
  auto p = Pusher::Create(
      {.url = "http://gw:9091/prefix/",
       .job = "nightly_bench",
       .grouping = {
           {"branch", "main"}, {"ref", "feature/x y"}, {"empty", ""}, {"utf8", "h\xC3\xA9"}}});
  ASSERT_TRUE(p.ok()) << p.status();
  // base64url without padding: "feature/x y" -> ZmVhdHVyZS94IHk, "hé" -> aMOp.
  EXPECT_EQ(p->path(),
            "/prefix/metrics/job/nightly_bench/branch/main/ref@base64/ZmVhdHVyZS94IHk"
            "/empty@base64/=/utf8@base64/aMOp");
  auto slash_job = Pusher::Create({.url = "https://gw", .job = "a/b"});
  ASSERT_TRUE(slash_job.ok());
  EXPECT_EQ(slash_job->path(), "/metrics/job@base64/YS9i");
}

// Records the last request; answers with `status`.
class FakeGateway {
 public:
  FakeGateway() {
    auto record = [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lk(mu_);
      method_ = req.method;
      path_ = req.path;
      body_ = req.body;
      content_type_ = req.get_header_value("Content-Type");
      authorization_ = req.get_header_value("Authorization");
      res.status = status_;
      res.set_content(status_ == 200 ? "" : "text format parsing error in line 3\n", "text/plain");
    };
    server_.Put(".*", record);
    server_.Post(".*", record);
    server_.Delete(".*", record);
    port_ = server_.bind_to_any_port("127.0.0.1");
    // Bound and listening already: connections queue until the accept loop runs.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeGateway() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void set_status(int s) { status_ = s; }

  std::mutex mu_;
  std::string method_, path_, body_, content_type_, authorization_;

 private:
  httplib::Server server_;
  int port_ = 0;
  int status_ = 200;
  std::thread thread_;
};

TEST(PusherTest, SendsTextFormatWithTheRightMethods) {
  FakeGateway gw;
  Registry r;
  r.AddCounter({.name = "bench_runs_total", .help = "Runs."})->WithLabelValues().Inc(3);
  auto p = Pusher::Create({.url = gw.url(),
                           .job = "bench",
                           .grouping = {{"branch", "main"}},
                           .basic_auth_user = "ci",
                           .basic_auth_password = "secret"});
  ASSERT_TRUE(p.ok()) << p.status();

  ASSERT_TRUE(p->Push(r.Collect()).ok());
  {
    std::lock_guard<std::mutex> lk(gw.mu_);
    EXPECT_EQ(gw.method_, "PUT");
    EXPECT_EQ(gw.path_, "/metrics/job/bench/branch/main");
    EXPECT_EQ(gw.content_type_, "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_THAT(gw.body_, HasSubstr("\nbench_runs_total 3\n"));
    EXPECT_EQ(gw.authorization_, "Basic Y2k6c2VjcmV0");  // base64("ci:secret")
  }
  ASSERT_TRUE(p->Add(r.Collect()).ok());
  {
    std::lock_guard<std::mutex> lk(gw.mu_);
    EXPECT_EQ(gw.method_, "POST");
  }
  ASSERT_TRUE(p->Delete().ok());
  {
    std::lock_guard<std::mutex> lk(gw.mu_);
    EXPECT_EQ(gw.method_, "DELETE");
    EXPECT_EQ(gw.path_, "/metrics/job/bench/branch/main");
  }
}

TEST(PusherTest, NonSuccessAnswersAreErrorsThatSayWhy) {
  FakeGateway gw;
  Registry r;
  auto p = Pusher::Create({.url = gw.url(), .job = "bench"});
  ASSERT_TRUE(p.ok());
  gw.set_status(400);
  absl::Status s = p->Push(r.Collect());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("PUT " + gw.url() + "/metrics/job/bench answered HTTP 400"));
  EXPECT_THAT(s.message(), HasSubstr("parsing error in line 3"));
  gw.set_status(503);
  EXPECT_EQ(p->Delete().code(), absl::StatusCode::kUnavailable);
  gw.set_status(401);
  EXPECT_EQ(p->Add(r.Collect()).code(), absl::StatusCode::kPermissionDenied);
}

TEST(PusherTest, UnreachableGatewayIsUnavailable) {
  // Port 1 on loopback: nothing listens there (and we are not root-bound to it).
  auto p = Pusher::Create(
      {.url = "http://127.0.0.1:1", .job = "bench", .timeout = std::chrono::milliseconds(500)});
  ASSERT_TRUE(p.ok());
  absl::Status s = p->Delete();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("http://127.0.0.1:1/metrics/job/bench"));
}

TEST(PusherTest, RefusesSeriesThatCarryAGroupingLabel) {
  Registry r;
  r.AddGauge({.name = "g", .help = "h", .label_names = {"branch"}})->WithLabelValues("x").Set(1);
  auto p = Pusher::Create(
      {.url = "http://127.0.0.1:1", .job = "bench", .grouping = {{"branch", "main"}}});
  ASSERT_TRUE(p.ok());
  absl::Status s = p->Push(r.Collect());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("family g has label \"branch\""));
  Registry with_job;
  with_job.AddGauge({.name = "h", .help = "h", .const_labels = {{"job", "other"}}})
      ->WithLabelValues()
      .Set(1);
  EXPECT_THAT(p->Add(with_job.Collect()).message(), HasSubstr("constant label \"job\""));
}

}  // namespace
}  // namespace metrics::exposition
