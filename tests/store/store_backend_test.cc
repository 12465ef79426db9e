// One behavioural suite over both EventBackend implementations (store/event_backend.h): the
// embedded store in a temp dir, and PostgreSQL 15 in a cluster this binary starts (once, on the
// first PostgreSQL test; stopped and removed by a gtest Environment at exit), with the
// PostgreSQL-only tests (metrics, import, LISTEN/NOTIFY). Label "concurrency": the sanitizer
// builds run it too.
#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/event_backend.h"
#include "store/event_store.h"
#include "store/internal/pg_metrics.h"
#include "store/postgres_store.h"
#include "tests/store/store_test_util.h"
#include "tests/support/postgres_cluster.h"

namespace metrics::store {
namespace {

using ::metrics::store::testing_util::ScratchDir;
using ::metrics::test_support::PostgresCluster;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// The cluster, started by the first test that needs it; the Environment stops it at exit.
class PostgresEnvironment : public ::testing::Environment {
 public:
  // Null (with *why) when PostgreSQL is not installed or would not start.
  PostgresCluster* Cluster(std::string* why) {
    if (!tried_) {
      tried_ = true;
      if (!PostgresCluster::Installed()) {
        error_ = absl::StrCat("PostgreSQL 15 binaries not found in ", PostgresCluster::kBinDir,
                              " (apt-get install postgresql)");
      } else {
        cluster_ = std::make_unique<PostgresCluster>();
        error_ = cluster_->Start();
        if (!error_.empty()) cluster_.reset();
      }
    }
    *why = error_;
    return cluster_.get();
  }
  void TearDown() override { cluster_.reset(); }

 private:
  bool tried_ = false;
  std::string error_;
  std::unique_ptr<PostgresCluster> cluster_;
};

PostgresEnvironment* const pg_env =
    static_cast<PostgresEnvironment*>(::testing::AddGlobalTestEnvironment(new PostgresEnvironment));

// kPostgresTwoWriters: two writer threads whose batches interleave, ordered only by the append
// lock inside PostgreSQL (PostgresOptions::writers).
enum class Backend { kEmbedded, kPostgres, kPostgresTwoWriters };
const char* NameOf(Backend b) {
  switch (b) {
    case Backend::kEmbedded:
      return "Embedded";
    case Backend::kPostgres:
      return "Postgres";
    case Backend::kPostgresTwoWriters:
      return "PostgresTwoWriters";
  }
  return "?";
}
void PrintTo(Backend b, std::ostream* os) { *os << NameOf(b); }

class StoreBackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kEmbedded) {
      dir_ = std::make_unique<ScratchDir>();
      // kNever: these tests are about semantics, not durability (store_recovery_test is).
      auto s = EventStore::Open({.data_dir = dir_->path(), .fsync = FsyncPolicy::kNever});
      ASSERT_TRUE(s.ok()) << s.status();
      store_ = *std::move(s);
      return;
    }
    std::string why;
    PostgresCluster* cluster = pg_env->Cluster(&why);
    if (cluster == nullptr && !PostgresCluster::Installed()) GTEST_SKIP() << why;
    ASSERT_NE(cluster, nullptr) << why;
    static int databases = 0;
    const std::string db = absl::StrCat("backend_test_", ++databases);
    ASSERT_EQ(cluster->CreateDatabase(db), "");
    auto s = PostgresEventStore::Open(
        {.conninfo = cluster->ConnInfo(db),
         .writers = GetParam() == Backend::kPostgresTwoWriters ? size_t{2} : size_t{1}});
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }

  AppendResult AppendOk(std::string_view stream, ExpectedVersion expected,
                        std::vector<NewEvent> events) {
    auto r = store_->Append(stream, expected, std::move(events));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : AppendResult{};
  }

  std::vector<Event> All() {
    auto r = store_->ReadAll();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<Event>{};
  }

  std::unique_ptr<ScratchDir> dir_;
  std::unique_ptr<EventBackend> store_;
};

std::string Id(int n) {
  std::string id(16, '\0');
  id[0] = static_cast<char>(0xa0);
  id[15] = static_cast<char>(n);
  id[14] = static_cast<char>(n >> 8);
  return id;
}

std::vector<uint64_t> Positions(const std::vector<Event>& events) {
  std::vector<uint64_t> out;
  for (const Event& e : events) out.push_back(e.position);
  return out;
}

TEST_P(StoreBackendTest, AppendAndReadRoundTrip) {
  EXPECT_EQ(store_->LastPosition(), 0u);
  EXPECT_TRUE(store_->Health().ok());
  const std::string binary("\0\x01\xff{\"a\":1}", 10);
  AppendResult a = AppendOk("team-red", ExpectedVersion::kNoStream,
                            {{.type = "team.registered", .payload = binary, .id = Id(1)},
                             {.type = "team.renamed", .payload = "", .id = Id(2)}});
  EXPECT_EQ(a.first_position, 1u);
  EXPECT_EQ(a.last_position, 2u);
  EXPECT_EQ(a.last_stream_version, 2u);
  EXPECT_FALSE(a.duplicate);
  AppendResult b =
      AppendOk("team-blue", ExpectedVersion::kAny, {{.type = "ü.type", .payload = "x"}});
  EXPECT_EQ(b.first_position, 3u);
  EXPECT_EQ(b.last_stream_version, 1u);

  auto red = store_->ReadStream("team-red");
  ASSERT_TRUE(red.ok()) << red.status();
  ASSERT_THAT(*red, SizeIs(2));
  EXPECT_EQ((*red)[0].position, 1u);
  EXPECT_EQ((*red)[0].stream, "team-red");
  EXPECT_EQ((*red)[0].stream_version, 1u);
  EXPECT_EQ((*red)[0].type, "team.registered");
  EXPECT_EQ((*red)[0].payload, binary);
  EXPECT_EQ((*red)[0].id, Id(1));
  EXPECT_EQ((*red)[1].payload, "");
  EXPECT_EQ((*red)[1].id, Id(2));
  EXPECT_GT((*red)[0].timestamp_ns, 0);
  EXPECT_EQ((*red)[0].timestamp_ns, (*red)[1].timestamp_ns);  // one Append, one timestamp

  std::vector<Event> all = All();
  ASSERT_THAT(all, SizeIs(3));
  EXPECT_EQ(all[0], (*red)[0]);
  EXPECT_EQ(all[2].stream, "team-blue");
  EXPECT_EQ(all[2].type, "ü.type");
  EXPECT_EQ(all[2].id, "");
  EXPECT_LE(all[1].timestamp_ns, all[2].timestamp_ns);

  EXPECT_EQ(*store_->StreamVersion("team-red"), 2u);
  EXPECT_EQ(*store_->StreamVersion("team-blue"), 1u);
  EXPECT_EQ(*store_->StreamVersion("nobody"), 0u);
  EXPECT_THAT(*store_->ReadStream("nobody"), SizeIs(0));
  EXPECT_EQ(store_->LastPosition(), 3u);
  EXPECT_GT(store_->SizeBytes(), 0u);
}

TEST_P(StoreBackendTest, ExpectedVersionConflictsWriteNothing) {
  AppendOk("s", ExpectedVersion::kNoStream, {{.type = "t", .payload = "1"}});
  auto r = store_->Append("s", ExpectedVersion::kNoStream, {{.type = "t", .payload = "2"}});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("expected no stream, actual 1"));
  r = store_->Append("s", ExpectedVersion::Exact(5), {{.type = "t", .payload = "2"}});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("expected 5, actual 1"));
  r = store_->Append("new", ExpectedVersion::Exact(1), {{.type = "t", .payload = "2"}});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("actual no stream"));
  EXPECT_EQ(store_->LastPosition(), 1u);
  EXPECT_EQ(*store_->StreamVersion("new"), 0u);

  EXPECT_EQ(AppendOk("s", ExpectedVersion::Exact(1), {{.type = "t", .payload = "3"}}).last_position,
            2u);
  EXPECT_EQ(
      AppendOk("s", ExpectedVersion::kAny, {{.type = "t", .payload = "4"}}).last_stream_version,
      3u);
  EXPECT_EQ(AppendOk("new", ExpectedVersion::Exact(0), {{.type = "t"}}).first_position, 4u);
  EXPECT_THAT(Positions(All()), ElementsAre(1, 2, 3, 4));
}

TEST_P(StoreBackendTest, MultiEventAppendsAreAtomic) {
  AppendOk("other", ExpectedVersion::kAny, {{.type = "t"}});
  // A conflict writes none of the three.
  auto r =
      store_->Append("s", ExpectedVersion::Exact(2), {{.type = "a"}, {.type = "b"}, {.type = "c"}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  // An invalid event in the middle writes none either.
  r = store_->Append("s", ExpectedVersion::kAny, {{.type = "a"}, {.type = ""}, {.type = "c"}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->LastPosition(), 1u);
  EXPECT_EQ(*store_->StreamVersion("s"), 0u);

  AppendResult ok =
      AppendOk("s", ExpectedVersion::kNoStream, {{.type = "a"}, {.type = "b"}, {.type = "c"}});
  EXPECT_EQ(ok.first_position, 2u);
  EXPECT_EQ(ok.last_position, 4u);
  EXPECT_EQ(ok.last_stream_version, 3u);
  auto s = store_->ReadStream("s");
  ASSERT_TRUE(s.ok());
  ASSERT_THAT(*s, SizeIs(3));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*s)[i].position, 2 + i);
    EXPECT_EQ((*s)[i].stream_version, 1 + i);
    EXPECT_EQ((*s)[i].type, std::string(1, static_cast<char>('a' + i)));
  }
}

TEST_P(StoreBackendTest, DuplicateIdsAreIdempotent) {
  AppendResult first = AppendOk("s", ExpectedVersion::kNoStream,
                                {{.type = "a", .id = Id(1)}, {.type = "b", .id = Id(2)}});
  AppendOk("other", ExpectedVersion::kAny, {{.type = "x"}});
  // The same run again: nothing written, the original positions, the expected version unchecked.
  auto again = store_->Append("s", ExpectedVersion::kNoStream,
                              {{.type = "a", .id = Id(1)}, {.type = "b", .id = Id(2)}});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->first_position, first.first_position);
  EXPECT_EQ(again->last_position, first.last_position);
  EXPECT_EQ(again->last_stream_version, 2u);
  // A tail of the run is a run too.
  auto tail = store_->Append("s", ExpectedVersion::kAny, {{.type = "b", .id = Id(2)}});
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_TRUE(tail->duplicate);
  EXPECT_EQ(tail->first_position, 2u);
  // A known id in another arrangement is refused, and nothing is written.
  auto mixed = store_->Append("s", ExpectedVersion::kAny,
                              {{.type = "c", .id = Id(3)}, {.type = "a", .id = Id(1)}});
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kFailedPrecondition) << mixed.status();
  EXPECT_THAT(mixed.status().message(), HasSubstr("not as this same run"));
  auto reversed = store_->Append("s", ExpectedVersion::kAny,
                                 {{.type = "b", .id = Id(2)}, {.type = "a", .id = Id(1)}});
  EXPECT_EQ(reversed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->LastPosition(), 3u);
  // Ids are per stream: the same ids elsewhere are new events.
  AppendResult elsewhere = AppendOk("s2", ExpectedVersion::kAny,
                                    {{.type = "a", .id = Id(1)}, {.type = "b", .id = Id(2)}});
  EXPECT_FALSE(elsewhere.duplicate);
  EXPECT_EQ(elsewhere.first_position, 4u);
  // A new id appends.
  AppendResult fresh = AppendOk("s", ExpectedVersion::Exact(2), {{.type = "c", .id = Id(3)}});
  EXPECT_FALSE(fresh.duplicate);
  EXPECT_EQ(fresh.last_stream_version, 3u);
  // Ids on only some events, or a wrong length: InvalidArgument.
  EXPECT_EQ(store_->Append("s", ExpectedVersion::kAny, {{.type = "a", .id = Id(9)}, {.type = "b"}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      store_->Append("s", ExpectedVersion::kAny, {{.type = "a", .id = "short"}}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreBackendTest, ReadAllIsInPositionOrderAndPages) {
  for (int i = 0; i < 25; ++i) {
    AppendOk(absl::StrCat("s-", i % 3), ExpectedVersion::kAny,
             {{.type = "t", .payload = absl::StrCat(i)}});
  }
  std::vector<Event> all = All();
  ASSERT_THAT(all, SizeIs(25));
  std::vector<Event> paged;
  for (uint64_t from = 1;;) {
    auto page = store_->ReadAll(from, 7);
    ASSERT_TRUE(page.ok()) << page.status();
    if (page->empty()) break;
    EXPECT_LE(page->size(), 7u);
    EXPECT_EQ(page->front().position, from);
    from = page->back().position + 1;
    paged.insert(paged.end(), page->begin(), page->end());
  }
  EXPECT_EQ(paged, all);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].position, i + 1);
    EXPECT_EQ(all[i].payload, absl::StrCat(i));
  }
  EXPECT_EQ(*store_->ReadAll(0, 2), std::vector<Event>(all.begin(), all.begin() + 2));
  EXPECT_THAT(*store_->ReadAll(26), SizeIs(0));
  EXPECT_THAT(*store_->ReadAll(1, 0), SizeIs(0));
  auto s1 = store_->ReadStream("s-1", 3, 2);
  ASSERT_TRUE(s1.ok());
  ASSERT_THAT(*s1, SizeIs(2));
  EXPECT_EQ((*s1)[0].stream_version, 3u);
  EXPECT_EQ((*s1)[0].payload, "7");  // s-1 holds 1, 4, 7, 10, ...
  EXPECT_EQ((*s1)[1].payload, "10");
  EXPECT_EQ(store_->ReadStream("bad stream").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->StreamVersion("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreBackendTest, ConcurrentAppendersLoseNothingAndLeaveNoGaps) {
  constexpr int kThreads = 8, kAppends = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppends; ++i) {
        // Every other append to the thread's own stream at the exact version it knows (must
        // never conflict), the rest to streams shared by all threads (any version).
        const bool own = i % 2 == 0;
        const std::string stream = own ? absl::StrCat("own-", t) : absl::StrCat("shared-", i % 3);
        const ExpectedVersion expected =
            own ? ExpectedVersion::Exact(static_cast<uint64_t>(i / 2)) : ExpectedVersion::kAny;
        auto r =
            store_->Append(stream, expected, {{.type = "t", .payload = absl::StrCat(t, "/", i)}});
        if (!r.ok()) {
          ADD_FAILURE() << r.status();
          failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);

  constexpr uint64_t kTotal = kThreads * kAppends;
  std::vector<Event> all = All();
  ASSERT_THAT(all, SizeIs(kTotal));
  EXPECT_EQ(store_->LastPosition(), kTotal);
  std::set<std::string> payloads;
  std::map<std::string, uint64_t> versions;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].position, i + 1) << "positions are not dense";
    EXPECT_EQ(all[i].stream_version, ++versions[all[i].stream])
        << "versions of " << all[i].stream << " are not dense";
    EXPECT_TRUE(payloads.insert(all[i].payload).second) << "twice: " << all[i].payload;
    if (i > 0) {
      EXPECT_LE(all[i - 1].timestamp_ns, all[i].timestamp_ns);
    }
  }
  EXPECT_EQ(payloads.size(), kTotal);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(*store_->StreamVersion(absl::StrCat("own-", t)), kAppends / 2u);
  }
}

TEST_P(StoreBackendTest, RacingExactAppendsToOneStreamSerialize) {
  // Every thread reads the version and appends at exactly it; conflicts are expected, and the
  // stream's version must end at the number of successes.
  constexpr int kThreads = 4, kWins = 25;
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int won = 0; won < kWins;) {
        auto v = store_->StreamVersion("race");
        ASSERT_TRUE(v.ok()) << v.status();
        auto r = store_->Append("race", ExpectedVersion::Exact(*v),
                                {{.type = "t", .payload = absl::StrCat(t, "/", won)}});
        if (r.ok()) {
          ++won;
        } else {
          ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
          conflicts.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(*store_->StreamVersion("race"), uint64_t{kThreads * kWins});
  EXPECT_THAT(All(), SizeIs(kThreads * kWins));
}

TEST_P(StoreBackendTest, ConcurrentRetriesWithTheSameIdsWriteOnce) {
  // A client's retry can arrive while its first attempt still waits in the queue, so both may
  // commit in one batch (PostgreSQL) or one after the other: either way one write, and every
  // attempt answers with the same positions.
  constexpr int kThreads = 8, kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    const std::string stream = absl::StrCat("retry-", round);
    std::vector<std::thread> threads;
    std::vector<absl::StatusOr<AppendResult>> results(kThreads, absl::UnknownError("unset"));
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        results[t] = store_->Append(
            stream, ExpectedVersion::kNoStream,
            {{.type = "a", .id = Id(2 * round + 1)}, {.type = "b", .id = Id(2 * round + 2)}});
      });
    }
    for (std::thread& th : threads) th.join();
    int written = 0;
    for (const auto& r : results) {
      ASSERT_TRUE(r.ok()) << r.status();
      written += r->duplicate ? 0 : 1;
      EXPECT_EQ(r->first_position, results[0]->first_position);
      EXPECT_EQ(r->last_stream_version, 2u);
    }
    EXPECT_EQ(written, 1) << stream;
    EXPECT_THAT(*store_->ReadStream(stream), SizeIs(2));
  }
  EXPECT_THAT(All(), SizeIs(2 * kRounds));
}

TEST_P(StoreBackendTest, CloseRefusesAppendsAndKeepsReads) {
  AppendOk("s", ExpectedVersion::kAny, {{.type = "t"}});
  EXPECT_TRUE(store_->Close().ok());
  EXPECT_TRUE(store_->Close().ok());  // idempotent
  EXPECT_FALSE(store_->Health().ok());
  auto r = store_->Append("s", ExpectedVersion::kAny, {{.type = "t"}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(All(), SizeIs(1));
  EXPECT_EQ(store_->LastPosition(), 1u);
}

// PostgreSQL only: the store's metric set keeps its names, and the backend adds its pool's and
// errors' metrics.
TEST(StorePostgresMetricsTest, StoreMetricSetPoolAndErrors) {
  std::string why;
  PostgresCluster* cluster = pg_env->Cluster(&why);
  if (cluster == nullptr && !PostgresCluster::Installed()) GTEST_SKIP() << why;
  ASSERT_NE(cluster, nullptr) << why;
  ASSERT_EQ(cluster->CreateDatabase("metrics_test"), "");
  Registry registry;
  auto store = PostgresEventStore::Open(
      {.conninfo = cluster->ConnInfo("metrics_test"), .pool_size = 2, .registry = &registry});
  ASSERT_TRUE(store.ok()) << store.status();
  using testing_util::HistogramCount;
  using testing_util::Value;
  EXPECT_GT(Value(registry, "event_store_size_bytes"), 0);  // the empty table's pages
  ASSERT_TRUE((*store)
                  ->Append("s", ExpectedVersion::kAny,
                           {{.type = "a", .payload = "12345"}, {.type = "b", .payload = "1"}})
                  .ok());
  ASSERT_TRUE((*store)->Append("s", ExpectedVersion::kAny, {{.type = "a", .payload = "1"}}).ok());
  // A conflict stores nothing and is not an error of the database.
  EXPECT_FALSE((*store)->Append("s", ExpectedVersion::kNoStream, {{.type = "a"}}).ok());
  EXPECT_EQ(Value(registry, "events_stored_total", {"a"}), 2);
  EXPECT_EQ(Value(registry, "events_stored_total", {"b"}), 1);
  EXPECT_EQ(Value(registry, "events_stored_bytes_total"), 7);
  EXPECT_EQ(HistogramCount(registry, "event_processing_duration_seconds"), 2);
  ASSERT_TRUE((*store)->ReadAll().ok());
  EXPECT_EQ(Value(registry, "pg_pool_connections", {"idle"}), 1);
  EXPECT_EQ(Value(registry, "pg_pool_connections", {"in_use"}), 0);
  EXPECT_GE(HistogramCount(registry, "pg_pool_wait_seconds"), 1);
  EXPECT_TRUE(std::isnan(Value(registry, "pg_errors_total", {"08"})));
  // A restart drops every connection: the append and the read each find theirs dead and retry
  // once on a new one; the errors are counted all the same, under the class PostgreSQL gave
  // (57P01 admin shutdown) or "connection".
  ASSERT_EQ(cluster->Restart(), "");
  (void)(*store)->Append("s", ExpectedVersion::kAny, {{.type = "a"}});
  ASSERT_TRUE((*store)->ReadAll().ok());  // reads retry once on a new connection
  const Snapshot snap = registry.Collect();
  const FamilySnapshot* errors = testing_util::FindFamily(snap, "pg_errors_total");
  ASSERT_NE(errors, nullptr);
  double total = 0;
  for (const SeriesSample& x : errors->samples) {
    EXPECT_THAT((*x.label_values)[0], ::testing::AnyOf("57", "08", "connection"));
    total += x.Total();
  }
  EXPECT_GE(total, 1);
  EXPECT_EQ(internal::PgMetrics::ErrorClass("postgresql: insert: SQLSTATE 23505: duplicate key"),
            "23");
  EXPECT_EQ(internal::PgMetrics::ErrorClass("postgresql: cannot connect: no such file"),
            "connection");
}

// PostgreSQL only: ImportFrom copies an embedded store as it is, resumes, and refuses another
// store's database.
TEST(StorePostgresImportTest, CopiesAnEmbeddedStoreAsItIsAndResumes) {
  std::string why;
  PostgresCluster* cluster = pg_env->Cluster(&why);
  if (cluster == nullptr && !PostgresCluster::Installed()) GTEST_SKIP() << why;
  ASSERT_NE(cluster, nullptr) << why;
  ScratchDir dir;
  auto embedded = EventStore::Open({.data_dir = dir.path(), .fsync = FsyncPolicy::kNever});
  ASSERT_TRUE(embedded.ok()) << embedded.status();
  auto fill = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      std::vector<NewEvent> events;
      for (int k = 0; k < 1 + i % 3; ++k) {
        events.push_back({.type = absl::StrCat("t", k),
                          .payload = absl::StrCat(std::string("\0\xff", 2), i, "/", k),
                          .id = i % 2 == 0 ? Id(i * 4 + k) : ""});
      }
      ASSERT_TRUE(
          (*embedded)->Append(absl::StrCat("s-", i % 7), ExpectedVersion::kAny, events).ok());
    }
  };
  fill(0, 1200);  // 2,400 events: three import transactions
  ASSERT_EQ(cluster->CreateDatabase("import_test"), "");
  auto pg = PostgresEventStore::Open({.conninfo = cluster->ConnInfo("import_test")});
  ASSERT_TRUE(pg.ok()) << pg.status();
  std::vector<uint64_t> reported;
  auto copied = (*pg)->ImportFrom(**embedded, [&](uint64_t through, uint64_t total) {
    reported.push_back(through);
    EXPECT_EQ(total, 2400u);
  });
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(*copied, 2400u);
  EXPECT_THAT(reported, ElementsAre(1000, 2000, 2400));
  EXPECT_EQ(*(*pg)->ReadAll(), *(*embedded)->ReadAll());  // every field, timestamps included

  // More events at the source: a second run copies only those.
  fill(1200, 1300);
  copied = (*pg)->ImportFrom(**embedded);
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(*copied, (*embedded)->LastPosition() - 2400);
  EXPECT_EQ(*(*pg)->ReadAll(), *(*embedded)->ReadAll());
  // The copy is a store like any other: appends continue its positions, versions and ids.
  auto dup =
      (*pg)->Append("s-0", ExpectedVersion::kAny, {{.type = "t0", .payload = "x", .id = Id(0)}});
  ASSERT_TRUE(dup.ok()) << dup.status();
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(dup->first_position, 1u);
  auto next = (*pg)->Append("s-0", ExpectedVersion::Exact(*(*embedded)->StreamVersion("s-0")),
                            {{.type = "after"}});
  ASSERT_TRUE(next.ok()) << next.status();
  const uint64_t end = (*embedded)->LastPosition() + 1;
  EXPECT_EQ(next->first_position, end);

  // A database holding other events is refused, and left as it was.
  ScratchDir other_dir;
  auto other = EventStore::Open({.data_dir = other_dir.path(), .fsync = FsyncPolicy::kNever});
  ASSERT_TRUE(other.ok());
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE((*other)->Append("o", ExpectedVersion::kAny, {{.type = "o"}}).ok());
  }
  auto refused = (*pg)->ImportFrom(**other);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("differs"));
  EXPECT_EQ((*pg)->LastPosition(), end);
}

// PostgreSQL only: a commit in one store (process) wakes a reader waiting in another.
TEST(StorePostgresNotifyTest, WaitForEventsWakesOnAnotherStoresCommit) {
  std::string why;
  PostgresCluster* cluster = pg_env->Cluster(&why);
  if (cluster == nullptr && !PostgresCluster::Installed()) GTEST_SKIP() << why;
  ASSERT_NE(cluster, nullptr) << why;
  ASSERT_EQ(cluster->CreateDatabase("notify_test"), "");
  auto a = PostgresEventStore::Open({.conninfo = cluster->ConnInfo("notify_test")});
  auto b = PostgresEventStore::Open({.conninfo = cluster->ConnInfo("notify_test")});
  ASSERT_TRUE(a.ok() && b.ok());
  // Nothing committed: the wait times out (and starts b's listener).
  EXPECT_FALSE((*b)->WaitForEvents(0, std::chrono::milliseconds(300)));
  // The listener may still be connecting on a slow machine: a missed first wake is retried.
  bool woke = false;
  for (int attempt = 0; attempt < 3 && !woke; ++attempt) {
    const uint64_t last = (*b)->LastPosition();
    std::thread waiter([&] { woke = (*b)->WaitForEvents(last, std::chrono::seconds(10)); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE((*a)->Append("s", ExpectedVersion::kAny, {{.type = "t"}}).ok());
    waiter.join();
  }
  EXPECT_TRUE(woke);
  // Announced positions are remembered: a reader behind them does not wait at all.
  EXPECT_TRUE((*b)->WaitForEvents(0, std::chrono::seconds(10)));
  EXPECT_FALSE((*b)->WaitForEvents((*b)->LastPosition(), std::chrono::milliseconds(100)));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreBackendTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kPostgres,
                                           Backend::kPostgresTwoWriters),
                         [](const ::testing::TestParamInfo<Backend>& p) {
                           return std::string(NameOf(p.param));
                         });

}  // namespace
}  // namespace metrics::store
