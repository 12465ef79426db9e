// What the server needs of an event store, whichever engine keeps the events: the embedded store
// (store/event_store.h, the default) or PostgreSQL (store/postgres_store.h).
//
// Semantics (both implementations; tests/store/store_backend_test.cc runs one suite over both):
// * Every event has a global position (1, 2, 3, ... dense, in commit order: a reader never sees a
//   gap that a later commit fills) and a version in its stream (1, 2, 3, ... per stream).
// * Append() is atomic (all events or none, consecutive positions and versions) and optimistic:
//   it names the version it expects the stream at (ExpectedVersion: any, no stream, exact), and a
//   mismatch writes nothing and fails with FailedPrecondition naming stream, expected and actual.
// * Event ids (16 bytes, per stream) make retries idempotent: an Append whose events the stream
//   already holds as a consecutive run with these ids, in this order, writes nothing and returns
//   the original positions with AppendResult::duplicate (the expected version is not checked
//   then); an id the stream holds in any other arrangement fails with FailedPrecondition.
// * Validation (stream ids, types, payload sizes, ids) and its InvalidArgument messages are the
//   same (store/internal/append_validation.h).
// * Unavailable means nothing was stored and a retry is safe; Unknown means the outcome is not
//   known (a retry with event ids is then the way to find out).
//
// Threads: every method is thread-safe. Reads keep working after Close().
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace metrics::store {

// What Append() expects the stream's current version to be.
class ExpectedVersion {
 public:
  static const ExpectedVersion kAny;       // no check
  static const ExpectedVersion kNoStream;  // the stream must not exist yet (version 0)
  // The stream must be at exactly this version (0 = no stream, the same as kNoStream).
  static constexpr ExpectedVersion Exact(uint64_t version) {
    return ExpectedVersion(Kind::kExact, version);
  }

  constexpr bool is_any() const { return kind_ == Kind::kAny; }
  // The version required, when !is_any().
  constexpr uint64_t version() const { return version_; }
  constexpr bool Matches(uint64_t current) const { return is_any() || current == version_; }
  // "any", "no stream" or the number.
  std::string ToString() const;

  friend constexpr bool operator==(const ExpectedVersion&, const ExpectedVersion&) = default;

 private:
  enum class Kind : uint8_t { kAny, kExact };
  constexpr ExpectedVersion(Kind kind, uint64_t version) : kind_(kind), version_(version) {}
  Kind kind_;
  uint64_t version_;
};

inline constexpr ExpectedVersion ExpectedVersion::kAny{ExpectedVersion::Kind::kAny, 0};
inline constexpr ExpectedVersion ExpectedVersion::kNoStream{ExpectedVersion::Kind::kExact, 0};

// An event to append.
struct NewEvent {
  std::string type;     // e.g. "team.registered"
  std::string payload;  // opaque bytes (the domain's projections use JSON)
  // Empty, or 16 bytes (a UUID) that identify the event for idempotent retries: an Append whose
  // events the stream already holds as a consecutive run with these ids, in this order, writes
  // nothing and returns their positions (AppendResult::duplicate). Ids are per stream and
  // remembered as long as the store holds the stream (rebuilt by recovery; 40-50 bytes each in
  // memory, see store/README.md). In one Append, every event has an id or none.
  std::string id;
};

// A stored event.
struct Event {
  uint64_t position = 0;        // global, 1-based, dense
  std::string stream;           // stream id
  uint64_t stream_version = 0;  // 1-based within the stream
  std::string type;
  std::string payload;
  std::string id;  // as appended: empty or 16 bytes
  // Nanoseconds since the Unix epoch: when the store accepted the Append() (read once per call),
  // made non-decreasing along positions by the writer. Assigned by the store, persisted.
  int64_t timestamp_ns = 0;

  friend bool operator==(const Event&, const Event&) = default;
};

struct AppendResult {
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  uint64_t last_stream_version = 0;
  // True when the events' ids were already in the stream: nothing was written, and the positions
  // are those of the original append (the expected version is not checked then).
  bool duplicate = false;
};

class EventBackend {
 public:
  static constexpr size_t kNoLimit = std::numeric_limits<size_t>::max();

  virtual ~EventBackend() = default;

  // Default arguments of these virtuals are bound by the static type: every implementation
  // repeats exactly these.
  virtual absl::StatusOr<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                                              std::vector<NewEvent> events) = 0;
  // Up to `max` events from position `from_position` (0 is read as 1) in position order.
  virtual absl::StatusOr<std::vector<Event>> ReadAll(uint64_t from_position = 1,
                                                     size_t max = kNoLimit) const = 0;
  // Up to `max` events of `stream` from version `from_version` (0 is read as 1); empty for a
  // stream that does not exist. InvalidArgument for an invalid stream id.
  virtual absl::StatusOr<std::vector<Event>> ReadStream(std::string_view stream,
                                                        uint64_t from_version = 1,
                                                        size_t max = kNoLimit) const = 0;
  // Current version of `stream` (0: no such stream).
  virtual absl::StatusOr<uint64_t> StreamVersion(std::string_view stream) const = 0;
  // OK while appends are accepted; else why not.
  virtual absl::Status Health() const = 0;
  // Position of the last committed event (0: empty store).
  virtual uint64_t LastPosition() const = 0;
  // Bytes the stored events take (files, or the database's table and indexes).
  virtual uint64_t SizeBytes() const = 0;
  // Stops accepting appends, completes every queued one. Idempotent.
  virtual absl::Status Close() = 0;
};

}  // namespace metrics::store
