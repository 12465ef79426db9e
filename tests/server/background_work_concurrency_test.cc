// The server's background threads under contention (also run under ThreadSanitizer): the
// scheduler's tick thread racing Add/Cancel from several threads, and webhook dispatchers
// delivering to a loopback receiver while appends, pause/resume and removal happen concurrently.
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <httplib.h>

#include "engine/registry.h"
#include "gtest/gtest.h"
#include "server/scheduler.h"
#include "server/webhooks.h"
#include "store/event_store.h"

namespace eventstore {
namespace {

using metrics::store::EventStore;
using metrics::store::ExpectedVersion;
using namespace std::chrono_literals;

std::string Id(int i) {
  std::string id(16, '\0');
  for (int k = 0; k < 4; ++k) id[12 + k] = static_cast<char>((i >> (8 * k)) & 0xff);
  return id;
}

TEST(BackgroundWorkConcurrencyTest, SchedulerTicksWhileThreadsAddAndCancel) {
  metrics::Registry registry;
  auto store = *EventStore::Open({});
  auto s = *Scheduler::Start(store.get(), &registry, {.tick = 1ms});
  constexpr int kThreads = 4, kEach = 100;
  std::vector<std::thread> threads;
  std::atomic<int> cancelled{0};
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const int n = t * kEach + i;
        ASSERT_TRUE(s->Add({.id = Id(n),
                            .due_at = now + (i % 3 == 0 ? 3600 : -1),  // due now, or in an hour
                            .stream = "s-" + std::to_string(n % 7),
                            .type = "t",
                            .data = "1"})
                        .ok());
        if (i % 3 == 0 && s->Cancel(Id(n)).ok()) cancelled.fetch_add(1);
        (void)s->Pending();
      }
    });
  }
  for (auto& t : threads) t.join();
  // Everything due is delivered once; the cancelled (all due in an hour) never.
  ASSERT_TRUE([&] {
    for (int i = 0; i < 500 && !s->Pending().empty(); ++i) std::this_thread::sleep_for(5ms);
    return s->Pending().empty();
  }());
  size_t events = 0;
  for (int k = 0; k < 7; ++k) {
    auto r = store->ReadStream("s-" + std::to_string(k));
    if (r.ok()) events += r->size();
  }
  EXPECT_EQ(cancelled.load(), kThreads * ((kEach + 2) / 3));
  EXPECT_EQ(events, static_cast<size_t>(kThreads * kEach - cancelled.load()));
}

TEST(BackgroundWorkConcurrencyTest, DispatchersDeliverWhileSubscriptionsChange) {
  httplib::Server rx;
  std::mutex mu;
  std::map<std::string, std::vector<uint64_t>> got;
  rx.Post(R"(/hook/(\w+))", [&](const httplib::Request& req, httplib::Response&) {
    std::lock_guard<std::mutex> lock(mu);
    got[req.matches[1]].push_back(std::stoull(req.get_header_value("X-Eventstore-Position")));
  });
  const int port = rx.bind_to_any_port("127.0.0.1");
  std::thread rx_thread([&] { rx.listen_after_bind(); });
  while (!rx.is_running()) std::this_thread::sleep_for(1ms);

  metrics::Registry registry;
  auto store = *EventStore::Open({});
  auto w = *WebhookService::Start(store.get(), &registry, {.poll = 1ms});
  const std::string base = "http://127.0.0.1:" + std::to_string(port) + "/hook/";
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_TRUE(w->Add({.name = name, .url = base + name, .secret = "k"}).ok());
  }
  std::atomic<bool> done{false};
  std::thread toggler([&] {
    for (int i = 0; !done; ++i) {
      (void)w->SetPaused("b", i % 2 == 0);
      (void)w->List();
      std::this_thread::sleep_for(2ms);
    }
    (void)w->SetPaused("b", false);
  });
  std::vector<std::thread> appenders;
  for (int t = 0; t < 3; ++t) {
    appenders.emplace_back([&, t] {
      for (int i = 0; i < 60; ++i) {
        ASSERT_TRUE(
            store->Append("x-" + std::to_string(t), ExpectedVersion::kAny, {{"t", "{}", ""}}).ok());
      }
    });
  }
  for (auto& a : appenders) a.join();
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(w->Remove("c").ok());  // mid-delivery, perhaps
  done = true;
  toggler.join();
  const uint64_t last = store->LastPosition();
  auto delivered_to = [&](const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    return std::set<uint64_t>(got[name].begin(), got[name].end()).size() >= 180;
  };
  for (int i = 0; i < 4000 && !(delivered_to("a") && delivered_to("b")); ++i) {
    std::this_thread::sleep_for(5ms);
  }
  w.reset();  // stops the dispatchers
  rx.stop();
  rx_thread.join();
  for (const char* name : {"a", "b"}) {
    std::set<uint64_t> positions(got[name].begin(), got[name].end());
    // Every user event, in order (the subscriptions' own stream events are not delivered).
    EXPECT_EQ(positions.size(), 180u) << name << " (last position " << last << ")";
    EXPECT_TRUE(std::is_sorted(got[name].begin(), got[name].end())) << name;
  }
}

}  // namespace
}  // namespace eventstore
