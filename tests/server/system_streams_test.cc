// The server's own streams ("webhooks:...", "scheduler:..."): which streams they are, that reads
// never show a subscription's secret, and that records there which are not the server's own (an
// embedding program's, an imported store's) are skipped at start rather than stopping the server.
#include "server/system_streams.h"

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "server/json_out.h"
#include "server/webhooks.h"
#include "store/event_store.h"

namespace eventstore {
namespace {

using metrics::store::Event;
using metrics::store::EventStore;
using metrics::store::ExpectedVersion;

TEST(SystemStreamsTest, OnlyTheServersPrefixes) {
  EXPECT_TRUE(IsSystemStream("webhooks:subscriptions"));
  EXPECT_TRUE(IsSystemStream("webhooks:checkpoints"));
  EXPECT_TRUE(IsSystemStream("scheduler:schedules"));
  EXPECT_TRUE(IsSystemStream("scheduler:anything"));
  EXPECT_FALSE(IsSystemStream("webhooks"));
  EXPECT_FALSE(IsSystemStream("scheduler"));
  EXPECT_FALSE(IsSystemStream("my-webhooks:x"));
  EXPECT_FALSE(IsSystemStream("orders-1"));
  EXPECT_FALSE(IsSystemStream(""));
}

TEST(SystemStreamsTest, ReadsNeverShowASubscriptionsSecret) {
  Event e{.position = 3,
          .stream = "webhooks:subscriptions",
          .stream_version = 1,
          .type = "subscription.created",
          .payload = R"({"name":"bot","url":"http://h/x","secret":"s3cret","position":2})"};
  std::string out;
  AppendEvent(&out, e, /*with_stream=*/true);
  EXPECT_EQ(out.find("s3cret"), std::string::npos) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["data"]["secret"], "(redacted)");
  EXPECT_EQ(j["data"]["name"], "bot");
  EXPECT_EQ(j["data"]["position"], 2);

  // The same bytes in any other stream are the client's own data, shown as stored.
  e.stream = "orders-1";
  std::string scratch;
  EXPECT_EQ(ReadablePayload(e, &scratch), e.payload);
  // A record of the subscriptions stream that is not a JSON object is shown as it is.
  e.stream = "webhooks:subscriptions";
  e.payload = "secret";
  EXPECT_EQ(ReadablePayload(e, &scratch), "secret");
}

TEST(SystemStreamsTest, WebhooksSkipRecordsThatAreNotTheirsAndStart) {
  auto store = *EventStore::Open({});
  auto put = [&](const std::string& type, const std::string& payload) {
    ASSERT_TRUE(
        store->Append(WebhookService::kSubscriptions, ExpectedVersion::kAny, {{type, payload}})
            .ok());
  };
  put("subscription.created", "not json");
  put("subscription.created", R"({"name":5,"url":"http://127.0.0.1:1/x","secret":"k"})");
  put("subscription.created", R"({"name":"a","url":7,"secret":"k"})");
  put("subscription.created", R"({"name":"b","url":"http://127.0.0.1:1/x","secret":"k",)"
                              R"("event_types":"not-a-list"})");
  put("subscription.created", R"({"name":"c","url":"ftp://x","secret":"k"})");
  put("subscription.created", R"({"name":"bad name","url":"http://127.0.0.1:1/x","secret":"k"})");
  put("subscription.created", R"({"name":"d","url":"http://127.0.0.1:1/x","secret":""})");
  put("subscription.created", R"({"name":"ok","url":"http://127.0.0.1:1/x","secret":"k"})");
  put("subscription.paused", R"({"name":["ok"]})");
  ASSERT_TRUE(store
                  ->Append(WebhookService::kCheckpoints, ExpectedVersion::kAny,
                           {{"webhook.checkpoint", R"({"name":"ok","position":"far"})"}})
                  .ok());
  auto w = WebhookService::Start(store.get(), nullptr, {});
  ASSERT_TRUE(w.ok()) << w.status();
  const std::vector<SubscriptionStatus> subs = (*w)->List();
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].subscription.name, "ok");
}

}  // namespace
}  // namespace eventstore
