// Webhook subscriptions against a receiver on a loopback port inside the test, through the real
// server process: order, filters, the HMAC-SHA256 signature, retries (500, 429 with Retry-After),
// pause/resume/delete, validation, and SIGKILL mid-delivery (after a restart nothing matching is
// skipped; repeats carry the same event id).
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/peers.h"

namespace {

using namespace ::metrics::test_support;
using namespace std::chrono_literals;
using nlohmann::json;

struct Delivery {
  std::string subscription, event_id, signature, body;
  uint64_t position = 0;
};

// Answers POST /hook/<anything> by the script (a list of statuses consumed in order, then 200),
// and records every request it gets.
class Receiver {
 public:
  Receiver() {
    server_.Post(R"(/hook/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
      std::lock_guard<std::mutex> lock(mu_);
      all_.push_back({req.get_header_value("X-Eventstore-Subscription"),
                      req.get_header_value("X-Eventstore-Event-Id"),
                      req.get_header_value("X-Eventstore-Signature"), req.body,
                      std::stoull(req.get_header_value("X-Eventstore-Position"))});
      int status = 200;
      if (!script_.empty()) {
        status = script_.front();
        script_.erase(script_.begin());
      }
      res.status = status;
      if (status == 429) res.set_header("Retry-After", "1");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/hook/" + path;
  }
  // Answered 2xx, for one subscription, in arrival order.
  std::vector<Delivery> Got(const std::string& sub, bool answered_only = true) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Delivery> out;
    for (size_t i = 0; i < all_.size(); ++i) {
      if (all_[i].subscription == sub) out.push_back(all_[i]);
    }
    (void)answered_only;
    return out;
  }
  void Script(std::vector<int> statuses) {
    std::lock_guard<std::mutex> lock(mu_);
    script_ = std::move(statuses);
  }
  std::chrono::milliseconds delay_{0};

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Delivery> all_;
  std::vector<int> script_;
};

std::string Hmac(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", mac[i]);
    hex += buf;
  }
  return hex;
}

int Subscribe(httplib::Client& c, const json& body) {
  auto r = c.Post("/subscriptions", body.dump(), "application/json");
  return r ? r->status : 0;
}

uint64_t Append(httplib::Client& c, const std::string& stream, const std::string& type,
                const std::string& id = "") {
  json ev = {{"type", type}, {"data", {{"k", stream}}}};
  if (!id.empty()) ev["id"] = id;
  auto r = c.Post("/streams/" + stream + "/events", ev.dump(), "application/json");
  EXPECT_TRUE(r && r->status == 201);
  return r ? json::parse(r->body)["first_position"].get<uint64_t>() : 0;
}

TEST(WebhooksProcessTest, OrderFiltersAndSignature) {
  Receiver rx;
  const std::string dir = TempDir("webhooks-order");
  EventStoreServer s(EVENTSTORE_SERVER, dir + "/data");
  ASSERT_GT(s.port(), 0);
  httplib::Client c = s.Client();
  ASSERT_EQ(Subscribe(c, {{"name", "orders"},
                          {"url", rx.url("orders")},
                          {"event_types", {"order.placed"}},
                          {"secret", "s3cret"}}),
            201);
  ASSERT_EQ(Subscribe(c, {{"name", "shop"},
                          {"url", rx.url("shop")},
                          {"stream_prefix", "shop-"},
                          {"secret", "other"}}),
            201);
  std::vector<uint64_t> placed, shop;
  for (int i = 0; i < 30; ++i) {
    const std::string stream = i % 3 == 2 ? "other-1" : "shop-" + std::to_string(i % 2);
    const std::string type = i % 2 ? "order.shipped" : "order.placed";
    const std::string id = i == 4 ? "5a7e3c1e-0000-4000-8000-000000000004" : "";
    const uint64_t p = Append(c, stream, type, id);
    if (type == "order.placed") placed.push_back(p);
    if (stream.rfind("shop-", 0) == 0) shop.push_back(p);
  }
  ASSERT_TRUE(Eventually([&] { return rx.Got("orders").size() >= placed.size(); }, 15));
  ASSERT_TRUE(Eventually([&] { return rx.Got("shop").size() >= shop.size(); }, 15));
  std::this_thread::sleep_for(300ms);
  const std::vector<Delivery> got = rx.Got("orders");
  ASSERT_EQ(got.size(), placed.size());  // each once, no retries needed
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].position, placed[i]) << "out of global order at " << i;
    EXPECT_EQ(got[i].signature, "sha256=" + Hmac("s3cret", got[i].body));
    const json body = json::parse(got[i].body);
    EXPECT_EQ(body["position"], placed[i]);
    EXPECT_EQ(body["type"], "order.placed");
    EXPECT_EQ(got[i].event_id, body.contains("id") ? body["id"].get<std::string>()
                                                   : "position-" + std::to_string(placed[i]));
  }
  EXPECT_EQ(got[2].event_id, "5a7e3c1e-0000-4000-8000-000000000004");  // the 5th event, i == 4
  std::vector<uint64_t> shop_got;
  for (const Delivery& d : rx.Got("shop")) shop_got.push_back(d.position);
  EXPECT_EQ(shop_got, shop);
  auto list = c.Get("/subscriptions");
  ASSERT_TRUE(list && list->status == 200);
  EXPECT_THAT(list->body, ::testing::Not(::testing::HasSubstr("s3cret")));
  const std::string m = c.Get("/metrics")->body;
  EXPECT_EQ(
      MetricValue(m, "webhook_deliveries_total{subscription=\"orders\",outcome=\"delivered\"}"),
      static_cast<double>(placed.size()));
  EXPECT_GE(MetricValue(m, "webhook_lag_seconds{subscription=\"orders\"}"), 0);
  EXPECT_EQ(MetricValue(m,
                        "outbound_requests_total{target=\"webhook.orders\",method=\"POST\","
                        "code=\"200\"}"),
            static_cast<double>(placed.size()));
  std::string out;
  RunShell("rm -rf " + dir, &out);
}

TEST(WebhooksProcessTest, RetriesUntilAcknowledgedInOrder) {
  Receiver rx;
  rx.Script({500, 500, 429});  // then 200
  const std::string dir = TempDir("webhooks-retry");
  EventStoreServer s(EVENTSTORE_SERVER, dir + "/data");
  httplib::Client c = s.Client();
  ASSERT_EQ(Subscribe(c, {{"name", "bot"}, {"url", rx.url("bot")}, {"secret", "k"}}), 201);
  const uint64_t first = Append(c, "chat-1", "message.posted");
  const uint64_t second = Append(c, "chat-1", "message.posted");
  ASSERT_TRUE(Eventually([&] { return rx.Got("bot").size() >= 5; }, 20));
  const std::vector<Delivery> got = rx.Got("bot");
  ASSERT_EQ(got.size(), 5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i].position, first) << i;  // 500, 500, 429, 200
  EXPECT_EQ(got[4].position, second);  // only after the first was acknowledged
  const std::string m = c.Get("/metrics")->body;
  EXPECT_EQ(MetricValue(m, "webhook_deliveries_total{subscription=\"bot\",outcome=\"failed\"}"), 3);
  EXPECT_EQ(MetricValue(m, "webhook_deliveries_total{subscription=\"bot\",outcome=\"delivered\"}"),
            2);
  EXPECT_EQ(MetricValue(m,
                        "outbound_requests_total{target=\"webhook.bot\",method=\"POST\","
                        "code=\"500\"}"),
            2);
  std::string out;
  RunShell("rm -rf " + dir, &out);
}

TEST(WebhooksProcessTest, PauseResumeDeleteAndValidation) {
  Receiver rx;
  const std::string dir = TempDir("webhooks-api");
  EventStoreServer s(EVENTSTORE_SERVER, dir + "/data");
  httplib::Client c = s.Client();
  EXPECT_EQ(Subscribe(c, {{"name", "bad name"}, {"url", rx.url("x")}, {"secret", "k"}}), 400);
  EXPECT_EQ(Subscribe(c, {{"name", "x"}, {"url", "ftp://x"}, {"secret", "k"}}), 400);
  EXPECT_EQ(Subscribe(c, {{"name", "x"}, {"url", rx.url("x")}}), 400);
  EXPECT_EQ(Subscribe(c, {{"name", "x"}, {"url", rx.url("x")}, {"secret", "k"}, {"extra", 1}}),
            400);
  EXPECT_EQ(Subscribe(c, {{"name", "x"},
                          {"url", rx.url("x")},
                          {"secret", "k"},
                          {"event_types", {"a"}},
                          {"stream_prefix", "b"}}),
            400);
  ASSERT_EQ(Subscribe(c, {{"name", "x"}, {"url", rx.url("x")}, {"secret", "k"}}), 201);
  EXPECT_EQ(Subscribe(c, {{"name", "x"}, {"url", rx.url("x")}, {"secret", "k"}}), 409);
  ASSERT_EQ(c.Post("/subscriptions/x/pause", "", "application/json")->status, 200);
  Append(c, "p", "t");
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(rx.Got("x").empty());  // paused
  ASSERT_EQ(c.Post("/subscriptions/x/resume", "", "application/json")->status, 200);
  ASSERT_TRUE(Eventually([&] { return rx.Got("x").size() == 1; }, 10));
  EXPECT_EQ(c.Delete("/subscriptions/x")->status, 204);
  EXPECT_EQ(c.Delete("/subscriptions/x")->status, 404);
  EXPECT_EQ(c.Post("/subscriptions/x/pause", "", "application/json")->status, 404);
  Append(c, "p", "t");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(rx.Got("x").size(), 1u);
  std::string out;
  RunShell("rm -rf " + dir, &out);
}

// The server's own streams through the API: appends and schedules into them are refused (a
// client's record there used to start an unchecked subscription, or keep the next start-up from
// working), and reads never show a subscription's secret.
TEST(WebhooksProcessTest, TheServersOwnStreamsAreNotWritableAndSecretsAreNotReadBack) {
  Receiver rx;
  const std::string dir = TempDir("webhooks-system");
  const json forged = {{"type", "subscription.created"},
                       {"data", {{"name", 5}, {"url", rx.url("forged")}, {"secret", "k"}}}};
  {
    EventStoreServer s(EVENTSTORE_SERVER, dir + "/data");
    httplib::Client c = s.Client();
    ASSERT_EQ(Subscribe(c, {{"name", "x"}, {"url", rx.url("x")}, {"secret", "s3cret-value"}}), 201);
    for (const char* stream : {"webhooks:subscriptions", "webhooks:checkpoints",
                               "scheduler:schedules", "webhooks:new"}) {
      auto r =
          c.Post(std::string("/streams/") + stream + "/events", forged.dump(), "application/json");
      ASSERT_TRUE(r) << stream;
      EXPECT_EQ(r->status, 403) << stream;
      EXPECT_THAT(r->body, ::testing::HasSubstr("/subscriptions")) << stream;
    }
    auto sched = c.Post("/schedules",
                        json{{"delay_seconds", 0},
                             {"stream", "webhooks:subscriptions"},
                             {"type", "subscription.created"},
                             {"data", forged["data"]}}
                            .dump(),
                        "application/json");
    ASSERT_TRUE(sched);
    EXPECT_EQ(sched->status, 400);
    for (const char* path : {"/streams/webhooks:subscriptions", "/all"}) {
      auto r = c.Get(path);
      ASSERT_TRUE(r) << path;
      ASSERT_EQ(r->status, 200) << path;
      EXPECT_EQ(r->body.find("s3cret-value"), std::string::npos) << path << ": " << r->body;
      EXPECT_THAT(r->body, ::testing::HasSubstr("(redacted)")) << path;
    }
    s.Stop(SIGTERM);
  }
  // A restart still works and still has the one subscription.
  EventStoreServer s(EVENTSTORE_SERVER, dir + "/data");
  ASSERT_GT(s.port(), 0);
  httplib::Client c = s.Client();
  auto list = c.Get("/subscriptions");
  ASSERT_TRUE(list);
  EXPECT_THAT(list->body, ::testing::HasSubstr("\"x\""));
  EXPECT_EQ(list->body.find("s3cret-value"), std::string::npos);
  std::string out;
  RunShell("rm -rf " + dir, &out);
}

TEST(WebhooksProcessTest, KilledMidDeliveryResumesWithoutSkipping) {
  Receiver rx;
  rx.delay_ = 15ms;  // 300 deliveries take ~4.5 s: the kill lands mid-stream
  const std::string dir = TempDir("webhooks-kill");
  std::set<uint64_t> want;
  {
    EventStoreServer s(EVENTSTORE_SERVER, dir + "/data");
    httplib::Client c = s.Client();
    ASSERT_EQ(Subscribe(c, {{"name", "all"}, {"url", rx.url("all")}, {"secret", "k"}}), 201);
    for (int i = 0; i < 300; ++i) want.insert(Append(c, "k-" + std::to_string(i % 7), "t"));
    // Let some be delivered (and a checkpoint or two be stored), then kill mid-stream.
    ASSERT_TRUE(Eventually([&] { return rx.Got("all").size() >= 120; }, 20));
    s.Stop(SIGKILL);
  }
  const size_t before_restart = rx.Got("all").size();
  ASSERT_LT(before_restart, want.size()) << "all delivered before the kill: nothing tested";
  EventStoreServer s(EVENTSTORE_SERVER, dir + "/data");
  ASSERT_GT(s.port(), 0);
  ASSERT_TRUE(Eventually(
      [&] {
        for (const Delivery& d : rx.Got("all")) {
          if (d.position == *want.rbegin()) return true;
        }
        return false;
      },
      30));
  std::set<uint64_t> got;
  std::map<uint64_t, std::set<std::string>> ids;
  for (const Delivery& d : rx.Got("all")) {
    got.insert(d.position);
    ids[d.position].insert(d.event_id);
  }
  EXPECT_EQ(got, want) << "an event was skipped";
  for (const auto& [p, set] : ids) EXPECT_EQ(set.size(), 1u) << "position " << p;
  std::printf("webhook SIGKILL: %zu events, %zu deliveries before the kill, %zu in all\n",
              want.size(), before_restart, rx.Got("all").size());
  std::string out;
  RunShell("rm -rf " + dir, &out);
}

}  // namespace
