// The event store kept in PostgreSQL (15+), behind the same API as the embedded store
// (store/event_backend.h): for when one machine's disk is not enough, when several server
// processes share one store, or when the events must live in the database the system already runs.
//
// clang-format off
//   auto store = metrics::store::PostgresEventStore::Open(
//       {.conninfo = "postgresql://app@db.internal/events"});
//   auto r = (*store)->Append("team-red", ExpectedVersion::kNoStream, {{.type = "team.registered"}});
// clang-format on
//
// Schema (created or migrated by Open, under an advisory lock, recorded in `schema_version`):
//   messages(global_position bigint PRIMARY KEY, stream text, stream_version bigint,
//            type text, id uuid NULL, payload bytea, time_ns bigint)
//   UNIQUE (stream, stream_version); UNIQUE (stream, id) WHERE id IS NOT NULL.
//
// Appends. Append() validates on the caller's thread (the embedded store's rules), queues the
// request and waits; a writer thread takes whatever is queued (group commit, up to max_batch
// requests) into ONE transaction of two round trips, each one libpq pipeline:
//   1. BEGIN; pg_advisory_xact_lock(kAppendLockKey); the last event; the version of every stream
//      in the batch; where the batch's event ids already are.
//   2. one INSERT ... SELECT FROM unnest(arrays) of every row; COMMIT.
// The lock serializes appends from every process, so global order is commit order (a reader never
// sees a gap that fills later). Between the two, per request in queue order and against what
// round 1 read plus the batch's earlier requests: the duplicate-id check, the expected-version
// check (a failing request gets FailedPrecondition and writes nothing; the others go on),
// positions max+1... A database error fails the whole batch: Unavailable when nothing was stored
// (connection refused, statement failed, rolled back), Unknown when the connection was lost in
// round 2 (the batch may or may not be stored).
//
// Reads and the rest use a pool of connections (pool_size) with prepared statements; they see
// committed events only. Errors: Unavailable when PostgreSQL cannot be reached.
//
// Threads: every method is thread-safe. Not here (yet): projections (the server's poller applies
// them, woken by WaitForEvents).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/event_backend.h"

namespace metrics {
class Registry;
}  // namespace metrics

namespace metrics::store {

struct PostgresOptions {
  // libpq connection string: a URL (postgresql://user@host:port/db?...) or key=value pairs.
  std::string conninfo;
  // Connections for reads (the writer thread has one more of its own).
  size_t pool_size = 4;
  // Append requests committed together in one transaction, at most.
  size_t max_batch = 256;
  // Writer threads (1..16), each with its own connection. With two, one batch's first round trip
  // waits on the append lock inside PostgreSQL while the other's commits, instead of in our queue:
  // for a database whose round trip is long. On a local socket one is faster (it makes batches
  // twice as large: 19.4k against 13.8k single-event appends/s from 16 appenders, bench/
  // backend_bench).
  size_t writers = 1;
  // Where the store's metric set (store/README.md; event_store_size_bytes is the table's size,
  // read every 5 s along with a batch) and the backend's own (store/internal/pg_metrics.h:
  // pg_pool_connections, pg_pool_wait_seconds, pg_errors_total) are registered; null: none.
  Registry* registry = nullptr;
  // Cap of distinct event types in events_stored_total (as StoreOptions::max_event_types).
  size_t max_event_types = 1000;
  // The embedded store's limits (StoreOptions), checked by Append() the same way.
  size_t max_stream_bytes = 256;
  size_t max_type_bytes = 128;
  size_t max_payload_bytes = size_t{1} << 20;
};

class PostgresEventStore final : public EventBackend {
 public:
  // The schema version this binary creates and reads.
  static constexpr int kSchemaVersion = 1;
  // pg_advisory_xact_lock(kLockClass, kAppendLockKey) serializes appends; ...(kLockClass,
  // kMigrateLockKey) serializes schema migrations.
  static constexpr int32_t kLockClass = 0x65767374;  // "evst"
  static constexpr int32_t kAppendLockKey = 1;
  static constexpr int32_t kMigrateLockKey = 2;

  // Connects, creates or migrates the schema, starts the writer thread. Errors: InvalidArgument
  // (options), Unavailable (cannot connect), FailedPrecondition (the database's schema is newer
  // than kSchemaVersion), Internal (a migration failed).
  static absl::StatusOr<std::unique_ptr<PostgresEventStore>> Open(const PostgresOptions& options);

  ~PostgresEventStore() override;  // Close()s
  PostgresEventStore(const PostgresEventStore&) = delete;
  PostgresEventStore& operator=(const PostgresEventStore&) = delete;

  absl::StatusOr<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                                      std::vector<NewEvent> events) override;
  absl::StatusOr<std::vector<Event>> ReadAll(uint64_t from_position = 1,
                                             size_t max = kNoLimit) const override;
  absl::StatusOr<std::vector<Event>> ReadStream(std::string_view stream, uint64_t from_version = 1,
                                                size_t max = kNoLimit) const override;
  absl::StatusOr<uint64_t> StreamVersion(std::string_view stream) const override;
  // OK unless closed, or the last batch failed for want of the database (cleared by the next
  // batch that commits).
  absl::Status Health() const override;
  // Read from the database (0 when it cannot be reached: see Health()).
  uint64_t LastPosition() const override;
  // pg_total_relation_size of `messages` (table, indexes, TOAST); 0 when unreachable.
  uint64_t SizeBytes() const override;
  // Copies every event of `source` that this store lacks, as it is (positions, stream versions,
  // ids, timestamps), in transactions of 1,000 events under the append lock: for moving a store
  // here (eventstore-server --import-from). Resumable: a store holding the first k events of
  // `source` (the k-th is compared) gets the rest. `progress(copied_through, total)` after each
  // transaction. Returns how many events it copied. Errors: FailedPrecondition (the store holds
  // other events, or more), InvalidArgument (an event the store's validation refuses), Unavailable.
  // An append between two of its transactions makes the next one fail (its events no longer
  // continue the store): import into a store nobody appends to.
  absl::StatusOr<uint64_t> ImportFrom(
      const EventBackend& source,
      const std::function<void(uint64_t copied_through, uint64_t total)>& progress = {});
  // Blocks until an append commits past `after_position` (in any process: LISTEN/NOTIFY, see
  // store/internal/pg_listener.h), or the notifications were interrupted, or `timeout` passes;
  // true unless it timed out. For catch-up readers: read, then wait from the last position read.
  // Commits before the first call are not announced, and a true return may be spurious: re-read.
  bool WaitForEvents(uint64_t after_position, std::chrono::milliseconds timeout) const;
  // Refuses new appends, commits what is queued, joins the writer. Reads keep working.
  absl::Status Close() override;

  class Impl;

 private:
  explicit PostgresEventStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace metrics::store
