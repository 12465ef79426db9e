// The writer: the one thread that changes the store. It takes whatever Append() requests are
// queued as one batch (group commit), checks expected versions and event ids in queue order,
// assigns positions and versions, encodes the records, writes them with one pwrite, fsyncs per
// the policy, undoes a failed write, counts the store's metrics, publishes the batch to the Index,
// releases the callers and wakes the projector.
//
// Threads.
//   - Submit(): any thread (the Append() callers); it queues the request and waits for the writer.
//   - Recover() and Start(): the thread that opens the store, before any other thread exists.
//   - Health(): any thread (under health_mu_).
//   - Stop(): the thread that closes the store; joins the writer thread.
//   - Everything else, and every member without a lock named beside it, belongs to the writer
//     thread (after Start) — the segment log, the per-stream versions and ids, the batch buffers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "store/event_store.h"
#include "store/internal/append_request.h"
#include "store/internal/index.h"
#include "store/internal/mutex.h"
#include "store/internal/queue.h"
#include "store/internal/record.h"
#include "store/internal/segment_log.h"
#include "store/internal/store_metrics.h"

namespace metrics::store::internal {

// An event id's 16 bytes as a map key, 8-byte aligned (absl::uint128 is 16-byte aligned, which
// made each map slot 32 bytes instead of 24).
struct IdKey {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend bool operator==(const IdKey&, const IdKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const IdKey& k) {
    return H::combine(std::move(h), k.hi, k.lo);
  }
};

// The writer's view of one stream: its version including the batch in flight, and its event ids.
struct WriterStream {
  uint64_t version = 0;
  // Event id (its 16 bytes) -> its version in this stream. Remembered for as long as the store
  // holds the stream; positions are looked up in the Index on the (rare) duplicate path.
  absl::flat_hash_map<IdKey, uint64_t> ids;
};

class Writer {
 public:
  struct Options {
    FsyncPolicy fsync = FsyncPolicy::kEveryBatch;
    uint32_t interval_ms = 100;
  };
  // metrics: may be null. on_published: called by the writer thread after each batch that stored
  // events (wakes the projector).
  Writer(Options options, Index& index, StoreMetrics* metrics, std::function<void()> on_published);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Open, before Start: one recovered record, in position order (SegmentLog::RecordFn). A stream
  // version out of sequence is returned as an error.
  absl::Status Recover(const RecordView& r, size_t segment_index,
                       const SegmentLog::Segment& segment, uint64_t offset);
  // Open, after recovery: the log to append to (none: in-memory mode); registers its segments
  // with the Index.
  absl::Status AttachLog(std::unique_ptr<SegmentLog> log);
  void Start(uint64_t next_position);

  // Any thread: queues `r` and waits until the writer completed it. FailedPrecondition once
  // stopping; ResourceExhausted when the queue cannot grow.
  void Submit(AppendRequest* r);

  absl::Status Health() const;
  // Refuses new requests, completes every queued one, syncs and closes the log, joins the thread.
  // Returns the first I/O error seen, if any. Idempotent.
  absl::Status Stop();

 private:
  void Loop();
  size_t WaitForRequests(ConsumerToken& token, AppendRequest** out);
  size_t Gather(ConsumerToken& token, AppendRequest** batch, size_t n);
  void ProcessBatch(AppendRequest** reqs, size_t n);
  // True when r's events are already in the stream (r completed as a duplicate with the original
  // positions) or clash with ids there (r failed); false: append it normally.
  bool Duplicate(WriterStream& e, AppendRequest* r);
  // The position of `version` of r's stream: in the Index, or in this batch's accepted requests.
  uint64_t PositionOf(const AppendRequest* r, uint64_t version) const;
  void SyncNow();
  void SetFailed(const absl::Status& cause);
  absl::Status AddNewSegments();

  const Options options_;
  std::unique_ptr<SegmentLog> log_;
  Index& index_;
  StoreMetrics* const metrics_;
  const std::function<void()> on_published_;

  // The queue, and the writer's wake-up (it sleeps only after spinning on an empty queue).
  ConcurrentQueue<AppendRequest*> queue_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  std::atomic<bool> writer_idle_{false};
  std::atomic<bool> closing_{false};
  std::atomic<int64_t> active_submitters_{0};  // between the closing check and the enqueue
  std::atomic<bool> syncing_{false};           // the writer is in an fsync now (a hint)
  std::thread thread_;
  Mutex stop_mu_;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;

  mutable Mutex health_mu_;
  absl::Status health_ ABSL_GUARDED_BY(health_mu_);  // a copy of failed_ for other threads

  // Writer thread.
  absl::node_hash_map<std::string, WriterStream> streams_;  // node: requests point into it
  uint64_t next_position_ = 1;
  int64_t last_timestamp_ = 0;
  absl::Status failed_;  // the I/O error after which no append is accepted
  bool unsynced_ = false;
  std::chrono::steady_clock::time_point last_sync_;
  size_t segments_in_index_ = 0;
  std::string buf_;
  std::vector<AppendRequest*> accepted_;
  std::vector<Index::Placed> placed_;
  size_t gather_target_ = 0;  // requests the next batch waits for (0: none)
  std::chrono::steady_clock::duration gather_window_{0};  // kEveryBatch: a quarter of an fsync
  absl::Status close_status_;
};

}  // namespace metrics::store::internal
