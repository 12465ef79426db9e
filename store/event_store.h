// An embedded, durable, append-only event store: the metrics engine's first user.
//
// clang-format off
//   metrics::Registry registry;
//   auto store = metrics::store::EventStore::Open({.data_dir = "/var/lib/app/events",
//                                                  .registry = &registry});
//   if (!store.ok()) ...;
//   auto r = (*store)->Append("team-red", ExpectedVersion::kNoStream,
//                             {{.type = "team.registered", .payload = R"({"team":"red",...})"}});
//   // r->first_position .. r->last_position are durable (per the fsync policy) once Append returns.
//   auto events = (*store)->ReadStream("team-red");
// clang-format on
//
// Model. Every event has a global position (1, 2, 3, ... dense, in commit order) and a version in
// its stream (1, 2, 3, ... per stream). Append() is optimistic concurrency: it names the version
// the caller expects the stream to be at, and nothing is written if the stream is elsewhere.
//
// Threads. Every method is thread-safe. Append() hands its request to one writer thread through a
// lock-free queue and waits (a short spin, then a condition variable); the writer takes whatever is
// queued as one batch (group commit): checks expected versions in queue order, assigns positions,
// writes the batch with one pwrite, fsyncs per FsyncPolicy, publishes the events to readers, then
// releases the callers. A projector thread applies committed events to projections.
//
// Files (data_dir; store/internal/segment_log.h): segment-<first position, 20 digits>.log, each a
// run of records framed as  u32 length | u32 CRC32C | body  (store/internal/record.h). Open replays
// all of them: a torn tail past the durable watermark is truncated and reported (stderr,
// event_store_recovery_truncated_bytes_total and recovery()), any other corruption fails Open with
// DataLoss naming the file and offset. Payloads stay on disk: memory holds an index (each event's
// segment offset, each stream's positions: about 20 bytes per event, plus ~40-50 per event id),
// and reads pread the records back (store/internal/index.h).
//
// Metrics (only with StoreOptions::registry; see store/README.md for the exact definitions):
//   events_stored_total{event_type}   events_stored_bytes_total   event_store_size_bytes
//   event_processing_duration_seconds (histogram)   event_store_recovery_truncated_bytes_total
//   projection_updates_total{projection}   projection_errors_total{projection}
//   projection_lag_seconds{projection}
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
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

enum class FsyncPolicy {
  kEveryBatch,  // fdatasync every batch before acknowledging it: an acked event survives power loss
  kInterval,    // acknowledge after write(); fdatasync at most every interval_ms (and when idle)
  kNever,       // acknowledge after write(); the OS decides (survives kill -9, not power loss)
};

struct StoreOptions {
  // Directory of the segment files, created if missing. Empty: in-memory mode (nothing is written;
  // for tests and benchmarks; SizeBytes() then counts the bytes the records would take framed).
  std::string data_dir;
  FsyncPolicy fsync = FsyncPolicy::kEveryBatch;
  uint32_t interval_ms = 100;  // kInterval only, >= 1
  // Where the store registers its metrics; nullptr: no metrics at all (not even a clock read).
  // Must outlive the store. One store per registry: two stores on one registry share the series.
  Registry* registry = nullptr;
  // A new segment file is started when the current one would grow past this (batches are not
  // split, so a segment can exceed it by one batch).
  size_t segment_bytes = size_t{64} << 20;
  // Cardinality cap of events_stored_total{event_type}: further types are counted in the
  // event_type="__overflow__" series.
  size_t max_event_types = 1000;

  // Limits, checked by Append() (InvalidArgument naming the problem).
  size_t max_stream_bytes = 256;  // stream ids: 1..max bytes of [A-Za-z0-9._:-]; max <= 16383
  size_t max_type_bytes = 128;  // event types: 1..max bytes of valid UTF-8, no control characters;
                                // max <= 32767
  size_t max_payload_bytes = size_t{1} << 20;  // up to 64 MiB

  // Projection failure policy. A transient failure (the apply returns Unavailable,
  // DeadlineExceeded, Aborted or ResourceExhausted) is retried this many times (so called at most
  // 1 + projection_retries times), with a backoff starting at projection_backoff and doubling up
  // to 100 ms. Any other failure, or an exception, would fail the same way again: no retry. Then
  // the event is skipped for that projection, counted in projection_errors_total, and logged to
  // stderr with its position (the first 10 a line each, then one summary line per 10 s).
  int projection_retries = 3;
  std::chrono::milliseconds projection_backoff{1};
};

// What Open() found in data_dir.
struct RecoveryReport {
  size_t segments = 0;
  uint64_t events = 0;
  uint64_t truncated_bytes = 0;  // torn tail cut off (0: the log was clean)
  std::string truncated_file;    // the segment it was cut from
  uint64_t truncated_offset = 0;
};

// Applied by the projector thread to every event exactly once, in position order.
using ProjectionFn = std::function<absl::Status(const Event&)>;

struct ProjectionStats {
  uint64_t applied_through = 0;  // every position <= this has been applied (or skipped)
  uint64_t updates = 0;          // events applied successfully
  uint64_t errors = 0;           // events skipped after exhausting the retries
  uint64_t retries = 0;          // failed attempts that were retried
};

// The embedded implementation of EventBackend (store/event_backend.h): final, so that calls
// through an EventStore* or & stay direct.
class EventStore final : public EventBackend {
 public:
  // Opens (or creates) the store and replays data_dir. Errors: InvalidArgument (bad options),
  // FailedPrecondition (data_dir locked by another open store), DataLoss (corruption other than a
  // torn tail, naming file and offset), an errno-derived status for I/O errors, or the registry's
  // error when a metric name is taken by a different definition.
  static absl::StatusOr<std::unique_ptr<EventStore>> Open(const StoreOptions& options);

  // Close()s.
  ~EventStore() override;
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  // Appends `events` to `stream` atomically (all or none, consecutive positions and versions) if
  // the stream is at `expected`; returns once the batch is durable per the fsync policy.
  // Errors: InvalidArgument (stream id, empty list, empty/too long/invalid type, payload too
  // large, an id that is not 16 bytes, ids on only some events or twice in one request),
  // FailedPrecondition (wrong expected version, naming stream, expected and actual; nothing
  // written), (an id the stream holds, but not as this same run of events: nothing written) or
  // (store closed); Unavailable when a write or (under kEveryBatch) an fsync of the
  // batch failed and its bytes were cut off and synced again: nothing was stored, a retry is safe,
  // and the store goes on; Unknown when even that failed: the request may or may not survive a
  // restart, and the store accepts no more appends (Health() says why); afterwards every append
  // fails with that error.
  absl::StatusOr<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                                      std::vector<NewEvent> events) override;

  // Readers see what callers were acknowledged: under kEveryBatch only events whose fsync returned
  // (durable), under kInterval/kNever events once written.
  //
  // Up to `max` events from position `from_position` (0 is read as 1) in position order; empty past
  // the end.
  absl::StatusOr<std::vector<Event>> ReadAll(uint64_t from_position = 1,
                                             size_t max = kNoLimit) const override;
  // Up to `max` events of `stream` from version `from_version`; empty for a stream that does not
  // exist. InvalidArgument for an invalid stream id.
  absl::StatusOr<std::vector<Event>> ReadStream(std::string_view stream, uint64_t from_version = 1,
                                                size_t max = kNoLimit) const override;
  // Current version of `stream` (0: no such stream). InvalidArgument for an invalid stream id.
  absl::StatusOr<uint64_t> StreamVersion(std::string_view stream) const override;
  // OK while the store accepts appends; else why not: the I/O error after which it stopped
  // (read-only from then on), or Unavailable once Close() has begun.
  absl::Status Health() const override;
  // Position of the last committed event (0: empty store).
  uint64_t LastPosition() const override;
  // Bytes of all segment files (in-memory mode: of the framed records).
  uint64_t SizeBytes() const override;

  // Registers a projection; allowed only after Open (and before Close). It starts at position 1 —
  // every event already stored, then every new one — applied by the projector thread in the
  // background (WaitForProjections to wait for it). Errors: InvalidArgument (empty name, invalid
  // UTF-8, null function), AlreadyExists (name taken), FailedPrecondition (closed).
  absl::Status AddProjection(std::string name, ProjectionFn apply);
  // Waits until every projection has handled every position <= `position`. OK at once with no
  // projections; DeadlineExceeded after `timeout`.
  absl::Status WaitForProjections(uint64_t position, std::chrono::nanoseconds timeout) const;
  // NotFound for an unknown name.
  absl::StatusOr<ProjectionStats> GetProjectionStats(std::string_view name) const;

  const RecoveryReport& recovery() const;

  // Stops accepting appends, stops the projector at its next event boundary (also out of a retry
  // backoff: projections live in memory and are rebuilt by replay, so a backlog is no reason to
  // wait), drains the queue (every queued append is completed), fsyncs and closes the files, joins
  // the threads.
  // Idempotent; reads keep working afterwards. Returns the first I/O error seen, if any.
  absl::Status Close() override;

  class Impl;

 private:
  explicit EventStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace metrics::store
