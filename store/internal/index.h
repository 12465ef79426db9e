// The published index: what readers, the projector and the HTTP API see of the store. Memory holds
// where each event is — its segment and offset — and each stream's positions; the events
// themselves stay in the segment files and are read with pread (in-memory mode: in chunks of
// encoded records kept in memory, read the same way).
//
// clang-format off
//   locations_[p - 1] = offset of position p's record in its segment (8 bytes per event)
//   segments_         = [{first_position, fd, published end}, ...]   (the segment of p: the last
//                       whose first_position <= p)
//   streams_[id]      = [position of version 1, of version 2, ...]   (8 bytes per event)
// clang-format on
//
// Threads. One writer thread (the store's, store/internal/writer.h) adds segments and publishes
// batches, each under the exclusive lock, once per batch; any thread reads, under the shared lock
// only while it finds locations: the record bytes are read after the lock is released (published
// bytes never change or move, and segment files are closed only when the Index is destroyed).
// The writer may read what it published itself without the lock (PublishedPositionWriter()).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/event_store.h"
#include "store/internal/mutex.h"

namespace metrics::store::internal {

class Index {
 public:
  // in_memory: records are handed to Publish and kept in memory chunks; otherwise they are read
  // from the segment files registered with AddSegment.
  explicit Index(bool in_memory) : in_memory_(in_memory) {}
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // ---- The writer thread (and Open, before any reader exists).

  // Registers a segment file, opened read-only here, whose first record has `first_position`.
  absl::Status AddSegment(uint64_t first_position, const std::string& path);

  // One event of a batch being published.
  struct Placed {
    std::string_view stream;
    uint64_t offset;  // of its record, from the start of the batch's records
  };
  struct Batch {
    uint64_t first_position = 0;  // of events[0]; the rest follow densely
    const std::vector<Placed>* events = nullptr;
    uint64_t length = 0;            // bytes of the batch's records
    uint64_t segment_offset = 0;    // file mode: where they were written in the last segment
    const char* records = nullptr;  // in-memory mode: the records, copied here
    uint64_t size_bytes = 0;        // the store's size afterwards (SizeBytes())
  };
  // Publishes a batch: each stream's new versions follow its current ones, in the order of
  // `events`. Readers see all of it or none.
  void Publish(const Batch& batch);

  // Open, after recovery: the store's size in bytes.
  void SetSizeBytes(uint64_t bytes) { size_bytes_.store(bytes, std::memory_order_relaxed); }

  // The position of version `version` (1-based) of `stream`, among what the writer published;
  // 0 if there is none. Writer thread only: it is the one thread that changes the index.
  uint64_t PublishedPositionWriter(std::string_view stream,
                                   uint64_t version) const ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // ---- Any thread.

  // Up to `max` events from `from` (>= 1) in position order.
  absl::StatusOr<std::vector<Event>> ReadAll(uint64_t from, size_t max) const;
  // Up to `max` events of `stream` from version `from` (>= 1).
  absl::StatusOr<std::vector<Event>> ReadStream(std::string_view stream, uint64_t from,
                                                size_t max) const;
  uint64_t StreamVersion(std::string_view stream) const;
  // The last published position. Pairs (acquire) with the release store at the end of Publish:
  // everything up to it is readable.
  uint64_t LastPosition() const { return last_position_.load(std::memory_order_acquire); }
  uint64_t SizeBytes() const { return size_bytes_.load(std::memory_order_relaxed); }

 private:
  struct Segment {
    uint64_t first_position = 0;
    int fd = -1;                  // file mode
    std::unique_ptr<char[]> mem;  // in-memory mode: a chunk of records
    size_t capacity = 0;          // of mem
    uint64_t end = 0;             // bytes published (the end of its last record)
  };
  // A run of consecutive records in one segment, located under the lock and read after it.
  struct Run {
    const Segment* segment;
    uint64_t offset;  // of the first record
    uint64_t bytes;   // through the end of the last record
    uint64_t count;   // records
  };

  const Segment* SegmentOf(uint64_t position) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Adds a run for positions [p, p + n) (in one segment) to *runs, merging with the last run when
  // contiguous.
  void AddRun(uint64_t p, uint64_t n, std::vector<Run>* runs) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Reads and parses the runs' records (no lock: the bytes are published and immutable).
  absl::StatusOr<std::vector<Event>> ReadRuns(const std::vector<Run>& runs) const;

  const bool in_memory_;
  mutable SharedMutex mu_;
  // std::deque: stable element addresses (readers keep Segment pointers after unlocking), and
  // growth without copying.
  std::deque<Segment> segments_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> locations_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<uint64_t>> streams_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> last_position_{0};
  std::atomic<uint64_t> size_bytes_{0};  // relaxed: a statistic, nothing is read through it
};

}  // namespace metrics::store::internal
