// Durable appends per second, side by side in one run: the embedded store (fsync every batch),
// PostgresEventStore (group commit) and a message-db-style append (one PL/pgSQL call per event,
// as Eventide's write_message does: advisory lock on the category, version check, insert) in the
// same throwaway PostgreSQL 15 cluster with fsync on. 1, 16 and 64 appenders; single events and
// batches of 100. items_per_second counts events.
//
//   build/bench/backend_bench --benchmark_min_time=1
//
// Needs PostgreSQL 15's server binaries (tools/install-deps.sh); without them only the embedded
// rows run. Runs as root too (the cluster then runs as `postgres`).
#include <libpq-fe.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "postgres_cluster.h"
#include "store/event_store.h"
#include "store/postgres_store.h"

namespace {

using metrics::store::EventBackend;
using metrics::store::ExpectedVersion;
using metrics::store::NewEvent;

metrics::test_support::PostgresCluster* g_cluster = nullptr;
std::unique_ptr<EventBackend> g_embedded;
std::unique_ptr<EventBackend> g_postgres;
std::string g_embedded_dir;

// Eventide message-db's write_message, reduced to what an append does (its schema: a bigserial
// global position, a per-stream position, an advisory lock per category held to commit).
constexpr const char* kMessageDbSchema = R"sql(
CREATE TABLE mdb_messages (
  global_position bigserial PRIMARY KEY,
  stream_name text NOT NULL,
  position bigint NOT NULL,
  type text NOT NULL,
  data bytea NOT NULL,
  time timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'));
CREATE UNIQUE INDEX mdb_stream_position ON mdb_messages (stream_name, position);
CREATE FUNCTION mdb_write(_stream text, _type text, _data bytea) RETURNS bigint AS $$
DECLARE
  _version bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext(split_part(_stream, '-', 1)));
  SELECT coalesce(max(position), -1) INTO _version FROM mdb_messages WHERE stream_name = _stream;
  INSERT INTO mdb_messages (stream_name, position, type, data)
    VALUES (_stream, _version + 1, _type, _data);
  RETURN _version + 1;
END;
$$ LANGUAGE plpgsql;
)sql";

std::string Payload() { return R"({"team":"red","points":3,"note":"a typical small event"})"; }

// Appender i writes to stream "cat<i % 64>-<i>" (64 categories, as in the issue's figures).
std::string StreamOf(int thread) {
  return "cat" + std::to_string(thread % 64) + "-" + std::to_string(thread);
}

void Append(benchmark::State& state, EventBackend* store) {
  if (store == nullptr) {
    state.SkipWithError("backend not available (PostgreSQL 15 server binaries missing?)");
    return;
  }
  const int per_append = static_cast<int>(state.range(0));
  const std::string stream = StreamOf(state.thread_index());
  std::vector<NewEvent> events(per_append, NewEvent{.type = "points.scored", .payload = Payload()});
  for (auto _ : state) {
    auto r = store->Append(stream, ExpectedVersion::kAny, events);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * per_append);
}

void BM_Append_Embedded(benchmark::State& state) { Append(state, g_embedded.get()); }
void BM_Append_Postgres(benchmark::State& state) { Append(state, g_postgres.get()); }

void BM_Append_MessageDbStyle(benchmark::State& state) {
  if (g_cluster == nullptr) {
    state.SkipWithError("PostgreSQL 15 server binaries missing");
    return;
  }
  const int per_append = static_cast<int>(state.range(0));
  PGconn* c = PQconnectdb(g_cluster->ConnInfo("bench").c_str());
  PGresult* prep = PQprepare(c, "w", "SELECT mdb_write($1, $2, $3)", 3, nullptr);
  const bool ok = PQresultStatus(prep) == PGRES_COMMAND_OK;
  PQclear(prep);
  if (!ok) {
    state.SkipWithError(PQerrorMessage(c));
    PQfinish(c);
    return;
  }
  const std::string stream = "mdb" + StreamOf(state.thread_index());
  const std::string type = "points.scored", payload = Payload();
  const char* values[] = {stream.c_str(), type.c_str(), payload.c_str()};
  auto exec = [&](PGresult* r) {
    const ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  };
  for (auto _ : state) {
    // One event: autocommit, one round trip. A batch: one transaction, as message-db's writers
    // put several write_message calls in one.
    bool good = per_append == 1 || exec(PQexec(c, "BEGIN"));
    for (int i = 0; good && i < per_append; ++i) {
      good = exec(PQexecPrepared(c, "w", 3, values, nullptr, nullptr, 0));
    }
    if (good && per_append > 1) good = exec(PQexec(c, "COMMIT"));
    if (!good) {
      state.SkipWithError(PQerrorMessage(c));
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * per_append);
  PQfinish(c);
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgName("events")->Arg(1)->Arg(100);
  b->Threads(1)->Threads(16)->Threads(64);
  b->UseRealTime();
}

BENCHMARK(BM_Append_Embedded)->Apply(Args);
BENCHMARK(BM_Append_Postgres)->Apply(Args);
BENCHMARK(BM_Append_MessageDbStyle)->Apply(Args);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  char tmpl[] = "/tmp/backend-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  g_embedded_dir = tmpl;
  auto embedded = metrics::store::EventStore::Open(
      {.data_dir = g_embedded_dir, .fsync = metrics::store::FsyncPolicy::kEveryBatch});
  if (!embedded.ok()) {
    std::fprintf(stderr, "embedded store: %s\n", embedded.status().ToString().c_str());
    return 1;
  }
  g_embedded = *std::move(embedded);

  metrics::test_support::PostgresCluster cluster;
  if (metrics::test_support::PostgresCluster::Installed()) {
    if (std::string err = cluster.Start(/*durable=*/true); !err.empty()) {
      std::fprintf(stderr, "PostgreSQL: %s\n", err.c_str());
      return 1;
    }
    if (std::string err = cluster.CreateDatabase("bench"); !err.empty()) {
      std::fprintf(stderr, "CREATE DATABASE: %s\n", err.c_str());
      return 1;
    }
    PGconn* c = PQconnectdb(cluster.ConnInfo("bench").c_str());
    PGresult* r = PQexec(c, kMessageDbSchema);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::fprintf(stderr, "message-db schema: %s\n", PQerrorMessage(c));
      return 1;
    }
    PQclear(r);
    PQfinish(c);
    auto pg = metrics::store::PostgresEventStore::Open({.conninfo = cluster.ConnInfo("bench")});
    if (!pg.ok()) {
      std::fprintf(stderr, "PostgresEventStore: %s\n", pg.status().ToString().c_str());
      return 1;
    }
    g_postgres = *std::move(pg);
    g_cluster = &cluster;
    benchmark::AddCustomContext("postgres", "15, fsync on, synchronous_commit on, unix socket");
  } else {
    std::fprintf(stderr, "PostgreSQL 15 server binaries missing: only the embedded rows run\n");
  }
  benchmark::AddCustomContext("embedded", "fsync every batch");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_postgres.reset();
  g_embedded.reset();
  g_cluster = nullptr;
  cluster.Stop();
  std::filesystem::remove_all(g_embedded_dir);
  return 0;
}
