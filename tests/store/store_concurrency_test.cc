// Concurrent appenders, readers and projections (label `concurrency`: also run under TSan).
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/event_store.h"
#include "tests/store/store_test_util.h"

namespace metrics::store {
namespace {

using ::metrics::store::testing_util::ScratchDir;
using ::metrics::store::testing_util::Value;

constexpr int kThreads = 4;
#if defined(__SANITIZE_THREAD__)
constexpr int kPerThread = 150;
#else
constexpr int kPerThread = 600;
#endif

struct Acked {
  AppendResult result;
  std::string stream;
  std::vector<std::string> payloads;
};

// Every thread appends to its own stream with exact expected versions, to a shared stream with
// optimistic retries (read version, append with it, retry on conflict), and to "any" with kAny;
// a reader thread reads all the while. Then: every acknowledged event is there exactly once,
// positions are dense, stream versions are dense, a projection saw every event once in order.
void RunConcurrentAppenders(const StoreOptions& options, Registry* registry) {
  auto opened = EventStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EventStore& store = **opened;

  std::mutex seen_mu;
  std::vector<uint64_t> seen;  // by the projection, in apply order
  ASSERT_TRUE(store
                  .AddProjection("all",
                                 [&](const Event& e) {
                                   std::lock_guard<std::mutex> lk(seen_mu);
                                   seen.push_back(e.position);
                                   return absl::OkStatus();
                                 })
                  .ok());

  std::vector<std::vector<Acked>> acked(kThreads);
  std::atomic<int> conflicts{0};
  std::atomic<bool> stop_reader{false};
  std::thread reader([&] {
    uint64_t last = 0;
    while (!stop_reader.load()) {
      const uint64_t now = store.LastPosition();
      EXPECT_GE(now, last);  // never goes back
      auto events = store.ReadAll(last + 1, 64);
      ASSERT_TRUE(events.ok());
      for (const Event& e : *events) {
        ASSERT_EQ(e.position, ++last);  // readers only see dense, committed prefixes
      }
      auto v = store.StreamVersion("shared");
      ASSERT_TRUE(v.ok());
      auto shared = store.ReadStream("shared");
      ASSERT_TRUE(shared.ok());
      EXPECT_GE(shared->size(), *v);
    }
  });

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = absl::StrCat("own-", t);
      uint64_t own_version = 0;
      for (int i = 0; i < kPerThread; ++i) {
        const std::string p = absl::StrCat(t, ":", i);
        switch (i % 3) {
          case 0: {
            auto r =
                store.Append(own, ExpectedVersion::Exact(own_version),
                             {{"own.a", absl::StrCat(p, ":a")}, {"own.b", absl::StrCat(p, ":b")}});
            ASSERT_TRUE(r.ok()) << r.status();
            own_version = r->last_stream_version;
            acked[t].push_back({*r, own, {absl::StrCat(p, ":a"), absl::StrCat(p, ":b")}});
            break;
          }
          case 1: {
            while (true) {
              const uint64_t v = *store.StreamVersion("shared");
              auto r = store.Append("shared", ExpectedVersion::Exact(v), {{"shared", p}});
              if (r.ok()) {
                acked[t].push_back({*r, "shared", {p}});
                break;
              }
              ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
              conflicts.fetch_add(1);
            }
            break;
          }
          default: {
            auto r = store.Append("any", ExpectedVersion::kAny, {{"any", p}});
            ASSERT_TRUE(r.ok()) << r.status();
            acked[t].push_back({*r, "any", {p}});
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  stop_reader.store(true);
  reader.join();

  // Every acknowledged event at its position, exactly once; positions dense.
  auto all = store.ReadAll();
  ASSERT_TRUE(all.ok());
  std::vector<int> hits(all->size() + 1, 0);
  size_t total = 0;
  for (const auto& per_thread : acked) {
    for (const Acked& a : per_thread) {
      ASSERT_EQ(a.result.last_position - a.result.first_position + 1, a.payloads.size());
      for (size_t k = 0; k < a.payloads.size(); ++k) {
        const uint64_t pos = a.result.first_position + k;
        ASSERT_LE(pos, all->size());
        const Event& e = (*all)[pos - 1];
        EXPECT_EQ(e.position, pos);
        EXPECT_EQ(e.stream, a.stream);
        EXPECT_EQ(e.payload, a.payloads[k]);
        EXPECT_EQ(e.stream_version, a.result.last_stream_version - (a.payloads.size() - 1 - k));
        ++hits[pos];
        ++total;
      }
    }
  }
  EXPECT_EQ(total, all->size());
  for (size_t p = 1; p < hits.size(); ++p) EXPECT_EQ(hits[p], 1) << "position " << p;
  EXPECT_EQ(store.LastPosition(), all->size());
  // Per stream: versions 1..n in position order.
  std::map<std::string, uint64_t> versions;
  for (const Event& e : *all) EXPECT_EQ(e.stream_version, ++versions[e.stream]) << e.stream;
  EXPECT_EQ(versions["shared"], static_cast<uint64_t>(kThreads * (kPerThread / 3)));

  ASSERT_TRUE(store.WaitForProjections(all->size(), std::chrono::seconds(60)).ok());
  {
    std::lock_guard<std::mutex> lk(seen_mu);
    ASSERT_EQ(seen.size(), all->size());
    for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], i + 1);
  }
  if (registry != nullptr) {
    EXPECT_EQ(Value(*registry, "events_stored_total", {"any"}), kThreads * (kPerThread / 3));
    EXPECT_EQ(Value(*registry, "events_stored_total", {"shared"}), kThreads * (kPerThread / 3));
    EXPECT_EQ(Value(*registry, "events_stored_total", {"own.a"}), kThreads * (kPerThread / 3));
    EXPECT_EQ(Value(*registry, "projection_updates_total", {"all"}),
              static_cast<double>(all->size()));
  }
  ASSERT_TRUE(store.Close().ok());

  if (!options.data_dir.empty()) {  // and the same after a reopen
    StoreOptions again = options;
    again.registry = nullptr;
    auto reopened = EventStore::Open(again);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_EQ(*(*reopened)->ReadAll(), *all);
  }
}

TEST(StoreConcurrencyTest, InMemoryWithMetrics) {
  Registry registry;
  RunConcurrentAppenders({.registry = &registry}, &registry);
}

TEST(StoreConcurrencyTest, DurableEveryBatch) {
  ScratchDir dir;
  RunConcurrentAppenders({.data_dir = dir.path(), .segment_bytes = 16 << 10}, nullptr);
}

TEST(StoreConcurrencyTest, DurableIntervalWithMetrics) {
  ScratchDir dir;
  Registry registry;
  RunConcurrentAppenders({.data_dir = dir.path(),
                          .fsync = FsyncPolicy::kInterval,
                          .interval_ms = 2,
                          .registry = &registry},
                         &registry);
}

TEST(StoreConcurrencyTest, DurableNever) {
  ScratchDir dir;
  RunConcurrentAppenders({.data_dir = dir.path(), .fsync = FsyncPolicy::kNever}, nullptr);
}

// Close() while appenders run: each append either succeeds (and is in the log) or fails with
// "closed"; nothing hangs, nothing acknowledged is lost.
TEST(StoreConcurrencyTest, CloseWhileAppending) {
  ScratchDir dir;
  auto store = *EventStore::Open({.data_dir = dir.path(), .fsync = FsyncPolicy::kNever});
  std::atomic<uint64_t> acked{0};
  std::atomic<bool> started{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        auto r = store->Append(absl::StrCat("s", t), ExpectedVersion::kAny, {{"t", "p"}});
        if (!r.ok()) {
          EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
          return;
        }
        acked.fetch_add(1);
        if (i == 10) started.store(true);
      }
    });
  }
  while (!started.load()) std::this_thread::yield();
  ASSERT_TRUE(store->Close().ok());
  for (auto& th : threads) th.join();
  EXPECT_EQ(store->LastPosition(), acked.load());
  store.reset();
  auto reopened = *EventStore::Open({.data_dir = dir.path()});
  EXPECT_EQ(reopened->LastPosition(), acked.load());
}

}  // namespace
}  // namespace metrics::store
