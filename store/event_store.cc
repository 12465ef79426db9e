#include "store/event_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/internal/strings.h"
#include "engine/registry.h"
#include "engine/validate.h"
#include "store/internal/queue.h"
#include "store/internal/record.h"
#include "store/internal/segment_log.h"
#include "store/internal/store_metrics.h"

namespace metrics::store {
namespace {

using ::metrics::internal::AV;
using SteadyClock = std::chrono::steady_clock;

// Requests the writer takes from the queue at most per batch.
constexpr size_t kMaxBatch = 1024;
// Events a projection handles per step before the projector looks at the others.
constexpr uint64_t kProjectionChunk = 256;
// How long a caller spins for its acknowledgement, and the writer for new requests, before
// sleeping on a condition variable. A round trip through an in-memory store takes microseconds,
// and a sleeping thread can take from tens of microseconds to milliseconds to wake, so even
// callers waiting for an fsync come out faster with a short spin first (the measurements are in
// bench/RESULTS.md and the store benchmarks).
constexpr auto kSpin = std::chrono::microseconds(20);
constexpr auto kPauseSpin = std::chrono::microseconds(10);

// Event timestamps and the processing-duration histogram share one clock.
int64_t NowNs() { return internal::StoreMetrics::Now(); }

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins with `done` until it returns true or about kSpin has passed; true if it did. First with
// `pause` (tens of ns) for up to kPauseSpin, which is where an in-memory round trip completes;
// then with sched_yield (microseconds, too coarse to start with), so that a waited-for thread that
// shares this CPU gets to run.
template <typename F>
bool SpinUntil(F done) {
  const SteadyClock::time_point start = SteadyClock::now();
  for (uint32_t i = 1;; ++i) {
    if (done()) return true;
    CpuRelax();
    if ((i & 31) == 0 && SteadyClock::now() - start > kPauseSpin) break;
  }
  for (uint32_t i = 0;; ++i) {
    if (done()) return true;
    std::this_thread::yield();
    if ((i & 3) == 3 && SteadyClock::now() - start > kSpin) return false;
  }
}

std::string Quote(std::string_view s) { return absl::StrCat("\"", absl::CHexEscape(AV(s)), "\""); }

bool IsStreamChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

struct StreamEntry {
  std::vector<uint64_t> positions;  // published: under data_mu_
  uint64_t writer_version = 0;      // the writer's view, including its batch in flight
  // Writer only: event id -> its position and version in this stream (ids are remembered for as
  // long as the store is open; rebuilt by recovery).
  struct Placed {
    uint64_t position;
    uint64_t version;
  };
  absl::flat_hash_map<absl::uint128, Placed> ids;  // keyed by the id's 16 bytes
};

// An event id's 16 bytes as a map key: no heap allocation per id.
absl::uint128 IdKey(std::string_view id) {
  uint64_t hi = 0, lo = 0;
  std::memcpy(&hi, id.data(), 8);
  std::memcpy(&lo, id.data() + 8, 8);
  return absl::MakeUint128(hi, lo);
}

// One Append() call, on the caller's stack until the writer completes it.
struct AppendRequest {
  std::string_view stream;
  ExpectedVersion expected = ExpectedVersion::kAny;
  std::vector<NewEvent>* events = nullptr;
  int64_t accept_ns = 0;  // clock read in Append(): the event timestamp and the histogram's start
  uint64_t payload_bytes = 0;
  uint64_t framed_bytes = 0;

  // Filled in by the writer.
  absl::Status status;
  AppendResult result;
  StreamEntry* entry = nullptr;
  uint64_t prev_version = 0;
  int64_t timestamp_ns = 0;

  // Completion. The writer sets `signaled` and notifies under `mu` (for a caller that went to
  // sleep), unlocks, and then stores `done`: its last touch of the request. The caller spins on
  // `done`; if it sleeps instead, it waits for `signaled`, then for `done`. Either way it returns
  // only after the writer has let go of the request, so the request can live on its stack, and a
  // caller that saw `done` while spinning never touches the mutex.
  std::atomic<bool> done{false};
  std::mutex mu;
  std::condition_variable cv;
  bool signaled = false;  // under mu
};

struct ProjectionState {
  std::string name;
  ProjectionFn apply;
  std::atomic<uint64_t> applied_through{0};  // stored under proj_mu_ (WaitForProjections)
  // Written by the projector thread only.
  std::atomic<uint64_t> updates{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> retries{0};
  // Bound once; default handles (no registry) are never touched.
  internal::StoreMetrics::ProjectionHandles m;
  // Skip log, projector thread only: the first kLoggedSkips skips a line each, then one summary
  // line per kSkipLogInterval with the count since the last line.
  uint64_t skips_logged = 0;
  uint64_t skips_unlogged = 0;
  SteadyClock::time_point last_skip_log{};
};

constexpr uint64_t kLoggedSkips = 10;
constexpr auto kSkipLogInterval = std::chrono::seconds(10);

// A failure worth retrying: the projection says so with one of these codes. Anything else (a bad
// payload, a missing field, an exception) would fail again the same way: skipped at once.
bool Transient(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

template <typename T>
void Bump(std::atomic<T>& a, T n) {  // single writer: no read-modify-write needed
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

absl::Status ValidateOptions(const StoreOptions& o) {
  if (o.fsync == FsyncPolicy::kInterval && o.interval_ms == 0) {
    return absl::InvalidArgumentError("interval_ms must be >= 1 with FsyncPolicy::kInterval");
  }
  if (o.segment_bytes == 0) return absl::InvalidArgumentError("segment_bytes must be > 0");
  if (o.max_event_types == 0) return absl::InvalidArgumentError("max_event_types must be > 0");
  if (o.max_stream_bytes == 0 || o.max_stream_bytes > internal::kMaxStreamBytes) {
    return absl::InvalidArgumentError("max_stream_bytes must be in [1, 16383]");
  }
  if (o.max_type_bytes == 0 || o.max_type_bytes > internal::kMaxTypeBytes) {
    return absl::InvalidArgumentError("max_type_bytes must be in [1, 32767]");
  }
  if (o.max_payload_bytes > internal::kMaxPayloadBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_payload_bytes must be <= ", internal::kMaxPayloadBytes));
  }
  if (o.projection_retries < 0) return absl::InvalidArgumentError("projection_retries < 0");
  if (o.projection_backoff.count() < 0) return absl::InvalidArgumentError("projection_backoff < 0");
  return absl::OkStatus();
}

}  // namespace

std::string ExpectedVersion::ToString() const {
  if (is_any()) return "any";
  if (version_ == 0) return "no stream";
  return absl::StrCat(version_);
}

class EventStore::Impl {
 public:
  explicit Impl(const StoreOptions& options)
      : options_(options), in_memory_(options.data_dir.empty()) {}

  absl::Status Open();
  void Start();
  absl::Status Close();

  absl::StatusOr<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                                      std::vector<NewEvent>& events);
  absl::Status ValidateStream(std::string_view stream) const;

  absl::StatusOr<std::vector<Event>> ReadAll(uint64_t from, size_t max) const;
  absl::StatusOr<std::vector<Event>> ReadStream(std::string_view stream, uint64_t from,
                                                size_t max) const;
  absl::StatusOr<uint64_t> StreamVersion(std::string_view stream) const;
  uint64_t LastPosition() const { return committed_.load(std::memory_order_acquire); }
  uint64_t SizeBytes() const { return size_bytes_.load(std::memory_order_relaxed); }

  absl::Status AddProjection(std::string name, ProjectionFn apply);
  absl::Status WaitForProjections(uint64_t position, std::chrono::nanoseconds timeout) const;
  absl::StatusOr<ProjectionStats> GetProjectionStats(std::string_view name) const;

  const RecoveryReport& recovery() const { return recovery_; }

 private:
  // Writer thread.
  void WriterLoop();
  size_t WaitForRequests(internal::ConsumerToken& token, AppendRequest** out);
  size_t Gather(internal::ConsumerToken& token, AppendRequest** batch, size_t n);
  void ProcessBatch(AppendRequest** reqs, size_t n);
  void Publish();
  void SyncNow();
  static void Complete(AppendRequest* r);
  StreamEntry* FindStream(std::string_view stream);
  // Writer: true when r's events are already in the stream (r completed as a duplicate with the
  // original positions) or clash with ids there (r failed); false: append it normally.
  bool Duplicate(StreamEntry& e, AppendRequest* r);

  // Projector thread.
  void ProjectorLoop();
  bool Behind(uint64_t* committed) const;  // requires proj_mu_
  void RunChunk(ProjectionState& p, uint64_t committed, std::vector<const Event*>& chunk);
  enum class Applied { kOk, kSkipped, kStopped };
  // Applies e, retrying transient failures with backoff; kStopped when Close() interrupted it.
  Applied ApplyWithRetries(ProjectionState& p, const Event& e);
  void LogSkip(ProjectionState& p, const Event& e, const absl::Status& s, int attempts);
  void WakeProjector();

  const StoreOptions options_;
  const bool in_memory_;
  std::unique_ptr<internal::SegmentLog> log_;        // writer thread after Open
  std::unique_ptr<internal::StoreMetrics> metrics_;  // null: no registry
  RecoveryReport recovery_;

  // Ingest: the queue, and the writer's wake-up (it sleeps only after spinning on an empty queue).
  internal::ConcurrentQueue<AppendRequest*> queue_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  std::atomic<bool> writer_idle_{false};
  std::atomic<bool> closing_{false};
  std::atomic<int64_t> active_appenders_{0};  // between the closing check and the enqueue
  std::atomic<bool> writer_syncing_{false};   // the writer is in an fsync now

  std::thread writer_;

  // Writer-owned state.
  uint64_t next_position_ = 1;
  int64_t last_timestamp_ = 0;
  absl::Status failed_;  // the I/O error after which no append is accepted
  // The store turns read-only: every later append fails with Unavailable and this message.
  void SetFailed(const absl::Status& cause) {
    absl::Status s = absl::UnavailableError(cause.message());
    failed_ = s;
    std::lock_guard<std::mutex> lk(health_mu_);
    health_ = std::move(s);
  }

 public:
  absl::Status Health() const {
    if (closing_.load(std::memory_order_acquire)) {  // pairs with the seq_cst store in Close()
      return absl::UnavailableError("event store is closed");
    }
    std::lock_guard<std::mutex> lk(health_mu_);
    return health_;
  }

 private:
  mutable std::mutex health_mu_;
  absl::Status health_;  // a copy of failed_ for other threads, under health_mu_
  bool unsynced_ = false;
  SteadyClock::time_point last_sync_;
  std::string buf_;
  std::vector<AppendRequest*> accepted_;
  std::vector<Event> staged_;
  size_t gather_target_ = 0;                // requests the next batch waits for (0: none)
  SteadyClock::duration gather_window_{0};  // kEveryBatch: a quarter of the last fsync
  absl::Status close_status_;

  // Published state: what readers and the projector see.
  mutable std::shared_mutex data_mu_;
  std::deque<Event> events_;  // events_[p - 1] has position p; push_back keeps references valid
  absl::node_hash_map<std::string, StreamEntry> streams_;  // inserts under data_mu_ (writer only)
  std::atomic<uint64_t> committed_{0};
  std::atomic<uint64_t> size_bytes_{0};

  // Projections.
  mutable std::mutex proj_mu_;
  std::condition_variable proj_cv_;              // the projector waits for work
  mutable std::condition_variable progress_cv_;  // WaitForProjections
  std::vector<std::shared_ptr<ProjectionState>> projections_;
  std::atomic<bool> have_projections_{false};
  std::atomic<bool> projector_waiting_{false};
  bool stop_projector_ = false;         // under proj_mu_
  bool stop_now_ = false;               // under proj_mu_: Close() began; stop at an event boundary
  std::atomic<bool> stop_hint_{false};  // stop_now_, for the projector's per-event check
  std::thread projector_;

  std::mutex close_mu_;
  bool closed_ = false;
  bool started_ = false;
};

// ---------------------------------------------------------------------------------------------
// Open / Close

absl::Status EventStore::Impl::Open() {
  if (options_.registry != nullptr) {
    auto m = internal::StoreMetrics::Create(*options_.registry, options_.max_event_types);
    if (!m.ok()) return m.status();
    metrics_ = *std::move(m);
  }
  if (!in_memory_) {
    internal::RecoveryResult rr;
    auto on_record = [this](const internal::RecordView& r) -> absl::Status {
      auto [it, inserted] = streams_.try_emplace(std::string(r.stream));
      StreamEntry& e = it->second;
      if (r.stream_version != e.writer_version + 1) {
        return absl::DataLossError(
            absl::StrCat("stream ", Quote(r.stream), " at version ", r.stream_version,
                         ", expected ", e.writer_version + 1, " (position ", r.position, ")"));
      }
      e.writer_version = r.stream_version;
      e.positions.push_back(r.position);
      if (!r.id.empty()) {
        e.ids[IdKey(r.id)] = {.position = r.position, .version = r.stream_version};
      }
      events_.push_back(Event{.position = r.position,
                              .stream = std::string(r.stream),
                              .stream_version = r.stream_version,
                              .type = std::string(r.type),
                              .payload = std::string(r.payload),
                              .id = std::string(r.id),
                              .timestamp_ns = r.timestamp_ns});
      last_timestamp_ = std::max(last_timestamp_, r.timestamp_ns);
      return absl::OkStatus();
    };
    auto log = internal::SegmentLog::Open({.dir = options_.data_dir,
                                           .segment_bytes = options_.segment_bytes,
                                           // Under every policy: a rolled segment is
                                           // complete, and recovery reads a bad record in a
                                           // segment that is not the last as corruption.
                                           .sync_on_roll = true},
                                          on_record, &rr);
    if (!log.ok()) return log.status();
    log_ = *std::move(log);
    recovery_ = {.segments = rr.segments,
                 .events = rr.records,
                 .truncated_bytes = rr.truncated_bytes,
                 .truncated_file = rr.truncated_file,
                 .truncated_offset = rr.truncated_offset};
    next_position_ = rr.records + 1;
    committed_.store(rr.records, std::memory_order_release);
    size_bytes_.store(log_->size_bytes(), std::memory_order_relaxed);
  }
  if (metrics_ != nullptr) {
    if (recovery_.truncated_bytes > 0) metrics_->RecoveryTruncated(recovery_.truncated_bytes);
    metrics_->SetSize(SizeBytes());
  }
  last_sync_ = SteadyClock::now();
  return absl::OkStatus();
}

void EventStore::Impl::Start() {
  started_ = true;
  writer_ = std::thread([this] { WriterLoop(); });
  projector_ = std::thread([this] { ProjectorLoop(); });
}

absl::Status EventStore::Impl::Close() {
  std::lock_guard<std::mutex> close_lock(close_mu_);
  if (closed_) return close_status_;
  closed_ = true;
  if (!started_) return absl::OkStatus();
  closing_.store(true, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lk(wake_mu_);
    wake_cv_.notify_one();
  }
  {
    // The projector stops at its next event boundary (and out of any retry backoff): in-memory
    // projections are rebuilt by replay, so a backlog is no reason to wait.
    std::lock_guard<std::mutex> lk(proj_mu_);
    stop_now_ = true;
    stop_projector_ = true;
    stop_hint_.store(true, std::memory_order_relaxed);
    proj_cv_.notify_all();
  }
  projector_.join();
  writer_.join();  // drains the queue, syncs and closes the log
  return close_status_;
}

// ---------------------------------------------------------------------------------------------
// Append (caller threads)

absl::Status EventStore::Impl::ValidateStream(std::string_view stream) const {
  if (stream.empty()) return absl::InvalidArgumentError("stream id is empty");
  if (stream.size() > options_.max_stream_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stream id is ", stream.size(), " bytes long, the limit is ", options_.max_stream_bytes));
  }
  for (size_t i = 0; i < stream.size(); ++i) {
    if (!IsStreamChar(stream[i])) {
      return absl::InvalidArgumentError(absl::StrCat("stream id ", Quote(stream),
                                                     " has a character outside [A-Za-z0-9._:-] at "
                                                     "offset ",
                                                     i));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<AppendResult> EventStore::Impl::Append(std::string_view stream,
                                                      ExpectedVersion expected,
                                                      std::vector<NewEvent>& events) {
  if (absl::Status s = ValidateStream(stream); !s.ok()) return s;
  if (events.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no events to append to stream ", Quote(stream)));
  }
  AppendRequest req;
  for (size_t i = 0; i < events.size(); ++i) {
    const NewEvent& e = events[i];
    if (e.type.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " has an empty type"));
    }
    if (e.type.size() > options_.max_type_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " type is ", e.type.size(),
                                                     " bytes long, the limit is ",
                                                     options_.max_type_bytes));
    }
    for (unsigned char c : e.type) {
      if (c < 0x20 || c == 0x7F) {
        return absl::InvalidArgumentError(
            absl::StrCat("event #", i, " type ", Quote(e.type), " has a control character"));
      }
    }
    if (!IsValidUtf8(e.type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("event #", i, " type ", Quote(e.type), " is not valid UTF-8"));
    }
    if (e.payload.size() > options_.max_payload_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("event #", i, " payload is ", e.payload.size(),
                                                     " bytes, the limit is ",
                                                     options_.max_payload_bytes));
    }
    if (!e.id.empty() && e.id.size() != internal::kIdBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("event #", i, " id is ", e.id.size(), " bytes, an id is 16 (a UUID)"));
    }
    if (e.id.empty() != events[0].id.empty()) {
      return absl::InvalidArgumentError("either every event of an append has an id, or none");
    }
    for (size_t k = 0; k < i && !e.id.empty(); ++k) {
      if (events[k].id == e.id) {
        return absl::InvalidArgumentError(
            absl::StrCat("events #", k, " and #", i, " have the same id"));
      }
    }
    req.payload_bytes += e.payload.size();
    req.framed_bytes +=
        internal::FramedSize(stream.size(), e.type.size(), e.payload.size(), e.id.size());
  }
  req.stream = stream;
  req.expected = expected;
  req.events = &events;

  active_appenders_.fetch_add(1, std::memory_order_seq_cst);
  if (closing_.load(std::memory_order_seq_cst)) {
    active_appenders_.fetch_sub(1, std::memory_order_seq_cst);
    return absl::FailedPreconditionError("the event store is closed");
  }
  req.accept_ns = NowNs();
  if (!queue_.enqueue(&req)) {
    // The queue could not allocate: the request never reached the writer, so nobody would ever
    // complete it. Say so instead of waiting for ever.
    active_appenders_.fetch_sub(1, std::memory_order_seq_cst);
    return absl::ResourceExhaustedError("the event store's queue could not grow (out of memory)");
  }
  active_appenders_.fetch_sub(1, std::memory_order_seq_cst);
  // Pairs with the fence in WaitForRequests: either the writer sees our request, or we see it idle.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (writer_idle_.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lk(wake_mu_);
    wake_cv_.notify_one();
  }

  // An append queued while the writer is in an fsync waits for that fsync and then its own: far
  // longer than a spin, so it sleeps at once and leaves the CPUs to the writer and the network
  // (with many concurrent HTTP appenders, spinning took a large share of all CPU time).
  if (writer_syncing_.load(std::memory_order_relaxed) ||  // a hint; the wait below is exact
      !SpinUntil([&] { return req.done.load(std::memory_order_acquire); })) {
    {
      std::unique_lock<std::mutex> lk(req.mu);
      req.cv.wait(lk, [&] { return req.signaled; });
    }
    while (!req.done.load(std::memory_order_acquire)) CpuRelax();  // the writer's next store
  }
  if (!req.status.ok()) return req.status;
  return req.result;
}

// ---------------------------------------------------------------------------------------------
// Writer thread

void EventStore::Impl::WriterLoop() {
  internal::ConsumerToken token(queue_);
  std::vector<AppendRequest*> batch(kMaxBatch);
  accepted_.reserve(kMaxBatch);
  while (true) {
    size_t n = queue_.try_dequeue_bulk(token, batch.data(), kMaxBatch);
    if (n == 0) n = WaitForRequests(token, batch.data());
    if (n == 0) break;  // closing, and every append has been completed
    if (gather_target_ > n) n = Gather(token, batch.data(), n);
    ProcessBatch(batch.data(), n);
    // Group commit under kEveryBatch: callers released from a batch usually append again within
    // microseconds, but the writer would already have taken whoever queued during the fsync, alone,
    // and the appenders would take turns, one fsync each. With evidence of concurrency (a batch of
    // several, or requests queued while it ran), the next batch waits briefly for the released
    // callers (Gather). One appender never waits.
    if (gather_window_.count() > 0) {
      const size_t queued = queue_.size_approx();
      gather_target_ = n >= 2 || queued > 0 ? std::min(kMaxBatch, n + queued) : 0;
    }
  }
  if (log_ != nullptr) {
    absl::Status s = log_->Close();
    if (close_status_.ok()) close_status_ = failed_.ok() ? s : failed_;
  }
}

size_t EventStore::Impl::WaitForRequests(internal::ConsumerToken& token, AppendRequest** out) {
  size_t n = 0;
  if (SpinUntil([&] {
        n = queue_.try_dequeue_bulk(token, out, kMaxBatch);
        return n > 0 || closing_.load(std::memory_order_relaxed);
      }) &&
      n > 0) {
    return n;
  }
  std::unique_lock<std::mutex> lk(wake_mu_);
  while (true) {
    writer_idle_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the one in Append()
    n = queue_.try_dequeue_bulk(token, out, kMaxBatch);
    if (n > 0) break;
    if (closing_.load(std::memory_order_seq_cst)) {
      if (active_appenders_.load(std::memory_order_seq_cst) == 0) {
        // Every Append() that passed its closing check has enqueued: take what is left.
        n = queue_.try_dequeue_bulk(token, out, kMaxBatch);
        break;
      }
      wake_cv_.wait_for(lk, std::chrono::milliseconds(1));
    } else if (unsynced_ && options_.fsync == FsyncPolicy::kInterval) {
      const auto deadline = last_sync_ + std::chrono::milliseconds(options_.interval_ms);
      if (wake_cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
        lk.unlock();
        SyncNow();
        lk.lock();
      }
    } else {
      wake_cv_.wait(lk);
    }
  }
  writer_idle_.store(false, std::memory_order_relaxed);
  return n;
}

size_t EventStore::Impl::Gather(internal::ConsumerToken& token, AppendRequest** batch, size_t n) {
  // Sleeps rather than spins: the callers it waits for need a CPU to wake up and append.
  const SteadyClock::time_point deadline = SteadyClock::now() + gather_window_;
  std::unique_lock<std::mutex> lk(wake_mu_);
  while (n < gather_target_ && !closing_.load(std::memory_order_relaxed)) {
    writer_idle_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the one in Append()
    const size_t m = queue_.try_dequeue_bulk(token, batch + n, kMaxBatch - n);
    n += m;
    if (m > 0) continue;
    if (wake_cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
      n += queue_.try_dequeue_bulk(token, batch + n, kMaxBatch - n);
      break;
    }
  }
  writer_idle_.store(false, std::memory_order_relaxed);
  return n;
}

bool EventStore::Impl::Duplicate(StreamEntry& e, AppendRequest* r) {
  const std::vector<NewEvent>& events = *r->events;
  auto first = e.ids.find(IdKey(events.front().id));
  bool same = first != e.ids.end();
  for (size_t i = 0; same && i < events.size(); ++i) {
    auto it = e.ids.find(IdKey(events[i].id));
    same = it != e.ids.end() && it->second.version == first->second.version + i;
  }
  if (same) {
    const StreamEntry::Placed& last = e.ids.find(IdKey(events.back().id))->second;
    r->result = {.first_position = first->second.position,
                 .last_position = last.position,
                 .last_stream_version = last.version,
                 .duplicate = true};
    return true;
  }
  for (size_t i = 0; i < events.size(); ++i) {
    if (auto it = e.ids.find(IdKey(events[i].id)); it != e.ids.end()) {
      r->status = absl::FailedPreconditionError(absl::StrCat(
          "event #", i, "'s id is already in stream ", Quote(r->stream), " at version ",
          it->second.version, ", but not as this same run of events: nothing written"));
      return true;
    }
  }
  return false;
}

StreamEntry* EventStore::Impl::FindStream(std::string_view stream) {
  // The writer is the only thread that inserts into streams_, so it may look up without the lock.
  auto it = streams_.find(AV(stream));
  return it == streams_.end() ? nullptr : &it->second;
}

void EventStore::Impl::SyncNow() {
  if (log_ == nullptr || !unsynced_ || !failed_.ok()) return;
  if (absl::Status s = log_->Sync(); !s.ok()) {
    SetFailed(absl::Status(s.code(),
                           absl::StrCat("event store stopped accepting appends: ", s.message())));
  }
  unsynced_ = false;
  last_sync_ = SteadyClock::now();
}

void EventStore::Impl::ProcessBatch(AppendRequest** reqs, size_t n) {
  accepted_.clear();
  if (!failed_.ok()) {
    for (size_t i = 0; i < n; ++i) {
      reqs[i]->status = failed_;
      Complete(reqs[i]);
    }
    return;
  }

  // 1. Check expected versions in queue order, assign positions and versions, encode.
  buf_.clear();
  uint64_t pos = next_position_;
  uint64_t framed = 0, payload = 0;
  for (size_t i = 0; i < n; ++i) {
    AppendRequest* r = reqs[i];
    StreamEntry* e = FindStream(r->stream);
    uint64_t version = e == nullptr ? 0 : e->writer_version;
    if (e != nullptr && !r->events->front().id.empty() && Duplicate(*e, r)) continue;
    if (!r->expected.Matches(version)) {
      r->status = absl::FailedPreconditionError(
          absl::StrCat("wrong expected version for stream ", Quote(r->stream), ": expected ",
                       r->expected.ToString(), ", actual ",
                       version == 0 ? std::string("no stream") : absl::StrCat(version)));
      continue;
    }
    if (e == nullptr) {
      std::unique_lock<std::shared_mutex> lk(data_mu_);
      e = &streams_.try_emplace(std::string(r->stream)).first->second;
    }
    r->entry = e;
    r->prev_version = version;
    r->timestamp_ns = last_timestamp_ = std::max(r->accept_ns, last_timestamp_);
    r->result.first_position = pos;
    if (in_memory_) {
      pos += r->events->size();
      version += r->events->size();
    } else {
      const NewEvent* const last = &r->events->back();
      for (const NewEvent& ev : *r->events) {
        internal::AppendRecord(&buf_, {.position = pos++,
                                       .timestamp_ns = r->timestamp_ns,
                                       .stream_version = ++version,
                                       .stream = r->stream,
                                       .type = ev.type,
                                       .payload = ev.payload,
                                       .id = ev.id,
                                       .ends_request = &ev == last});
      }
    }
    r->result.last_position = pos - 1;
    r->result.last_stream_version = version;
    if (!r->events->front().id.empty()) {
      uint64_t p = r->result.first_position, v = r->prev_version;
      for (const NewEvent& ev : *r->events)
        e->ids[IdKey(ev.id)] = {.position = p++, .version = ++v};
    }
    e->writer_version = version;
    framed += r->framed_bytes;
    payload += r->payload_bytes;
    accepted_.push_back(r);
  }

  if (!accepted_.empty()) {
    // 2. Make the batch durable per the policy.
    uint64_t size;
    int64_t durable_ns = 0;  // the clock once the batch is durable, when something needs it
    if (!in_memory_) {
      absl::Status s = log_->Append(buf_, next_position_);
      if (s.ok() && options_.fsync == FsyncPolicy::kEveryBatch) {
        // The metrics' clock (cheaper than steady_clock): the read after the fsync is
        // also the end of event_processing_duration_seconds, so under this policy the histogram
        // costs no clock read of its own. A wall-clock step only mis-sizes one gather window.
        const int64_t start = NowNs();
        writer_syncing_.store(true, std::memory_order_relaxed);  // a hint for Append's spin only
        s = log_->Sync();
        writer_syncing_.store(false, std::memory_order_relaxed);
        durable_ns = NowNs();
        // Gather for at most a quarter of an fsync: the wait buys a share of the next one.
        gather_window_ =
            std::chrono::nanoseconds(std::clamp<int64_t>((durable_ns - start) / 4, 0, 1'000'000));
      }
      if (!s.ok()) {
        // The batch's callers have not been acknowledged: cut its bytes off and sync, so that
        // "not written" stays true after a crash too. Under interval/never an fsync covers batches
        // already acknowledged, and is not undone (SyncNow).
        absl::Status outcome;
        if (absl::Status undo = log_->UndoLastAppend(); undo.ok()) {
          outcome = absl::UnavailableError(
              absl::StrCat("not written (", s.message(),
                           "): nothing of this request is stored; retrying is safe"));
        } else {
          SetFailed(absl::Status(
              undo.code(), absl::StrCat("event store stopped accepting appends: ", s.message(),
                                        ", then ", undo.message())));
          outcome = absl::UnknownError(absl::StrCat(
              "outcome unknown (", s.message(), ", then ", undo.message(),
              "): the request may or may not be stored; the store accepts no more appends"));
        }
        // Undo the versions and ids, latest first (a stream may appear twice in the batch).
        for (auto it = accepted_.rbegin(); it != accepted_.rend(); ++it) {
          (*it)->entry->writer_version = (*it)->prev_version;
          for (const NewEvent& ev : *(*it)->events) {
            if (!ev.id.empty()) (*it)->entry->ids.erase(IdKey(ev.id));
          }
          (*it)->status = outcome;
        }
        // A retry that found its events in this very batch pointed at what was just undone.
        for (size_t i = 0; i < n; ++i) {
          if (reqs[i]->status.ok() && reqs[i]->result.duplicate &&
              reqs[i]->result.first_position >= next_position_) {
            reqs[i]->status = outcome;
          }
        }
        for (size_t i = 0; i < n; ++i) Complete(reqs[i]);
        return;
      }
      unsynced_ = options_.fsync != FsyncPolicy::kEveryBatch;
      size = log_->size_bytes();
    } else {
      size = size_bytes_.load(std::memory_order_relaxed) + framed;
    }

    // 3. Count and time it (before Publish moves the types out), then publish.
    if (metrics_ != nullptr) {
      if (durable_ns == 0) durable_ns = NowNs();  // one clock read per batch
      for (AppendRequest* r : accepted_) {
        for (const NewEvent& ev : *r->events) metrics_->CountEvent(ev.type);
        metrics_->Released(durable_ns, r->accept_ns);
      }
      metrics_->BatchStored(payload, size);
    }
    size_bytes_.store(size, std::memory_order_relaxed);
    next_position_ = pos;
    Publish();
  }

  // 4. Release the callers, then hand the events to the projector.
  for (size_t i = 0; i < n; ++i) Complete(reqs[i]);
  if (!accepted_.empty() && have_projections_.load(std::memory_order_relaxed)) WakeProjector();
  if (unsynced_ && options_.fsync == FsyncPolicy::kInterval &&
      SteadyClock::now() - last_sync_ >= std::chrono::milliseconds(options_.interval_ms)) {
    SyncNow();
  }
}

void EventStore::Impl::Publish() {
  staged_.clear();
  for (AppendRequest* r : accepted_) {
    uint64_t pos = r->result.first_position;
    uint64_t version = r->prev_version;
    for (NewEvent& ev : *r->events) {
      staged_.push_back(Event{.position = pos++,
                              .stream = std::string(r->stream),
                              .stream_version = ++version,
                              .type = std::move(ev.type),
                              .payload = std::move(ev.payload),
                              .id = std::move(ev.id),
                              .timestamp_ns = r->timestamp_ns});
    }
  }
  std::unique_lock<std::shared_mutex> lk(data_mu_);
  for (AppendRequest* r : accepted_) {
    for (uint64_t p = r->result.first_position; p <= r->result.last_position; ++p) {
      r->entry->positions.push_back(p);
    }
  }
  for (Event& e : staged_) events_.push_back(std::move(e));
  committed_.store(events_.size(), std::memory_order_release);
}

void EventStore::Impl::Complete(AppendRequest* r) {
  {
    std::lock_guard<std::mutex> lk(r->mu);
    r->signaled = true;
    r->cv.notify_one();
  }
  r->done.store(true, std::memory_order_release);  // the last touch: r may be gone after this
}

// ---------------------------------------------------------------------------------------------
// Reads

absl::StatusOr<std::vector<Event>> EventStore::Impl::ReadAll(uint64_t from, size_t max) const {
  std::vector<Event> out;
  if (from == 0) from = 1;
  std::shared_lock<std::shared_mutex> lk(data_mu_);
  const uint64_t total = events_.size();
  if (from > total) return out;
  const uint64_t n = std::min<uint64_t>(total - from + 1, max);
  out.reserve(n);
  for (uint64_t i = 0; i < n; ++i) out.push_back(events_[from - 1 + i]);
  return out;
}

absl::StatusOr<std::vector<Event>> EventStore::Impl::ReadStream(std::string_view stream,
                                                                uint64_t from, size_t max) const {
  if (absl::Status s = ValidateStream(stream); !s.ok()) return s;
  std::vector<Event> out;
  if (from == 0) from = 1;
  std::shared_lock<std::shared_mutex> lk(data_mu_);
  auto it = streams_.find(AV(stream));
  if (it == streams_.end()) return out;
  const std::vector<uint64_t>& positions = it->second.positions;
  if (from > positions.size()) return out;
  const uint64_t n = std::min<uint64_t>(positions.size() - from + 1, max);
  out.reserve(n);
  for (uint64_t i = 0; i < n; ++i) out.push_back(events_[positions[from - 1 + i] - 1]);
  return out;
}

absl::StatusOr<uint64_t> EventStore::Impl::StreamVersion(std::string_view stream) const {
  if (absl::Status s = ValidateStream(stream); !s.ok()) return s;
  std::shared_lock<std::shared_mutex> lk(data_mu_);
  auto it = streams_.find(AV(stream));
  return it == streams_.end() ? 0 : it->second.positions.size();
}

// ---------------------------------------------------------------------------------------------
// Projections

absl::Status EventStore::Impl::AddProjection(std::string name, ProjectionFn apply) {
  if (name.empty()) return absl::InvalidArgumentError("projection name is empty");
  if (!IsValidUtf8(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("projection name ", Quote(name), " is not valid UTF-8"));
  }
  if (!apply) {
    return absl::InvalidArgumentError(
        absl::StrCat("projection ", Quote(name), " has no apply function"));
  }
  auto p = std::make_shared<ProjectionState>();
  p->name = std::move(name);
  p->apply = std::move(apply);
  std::lock_guard<std::mutex> lk(proj_mu_);
  if (stop_projector_ || closing_.load()) {
    return absl::FailedPreconditionError("the event store is closed");
  }
  for (const auto& q : projections_) {
    if (q->name == p->name) {
      return absl::AlreadyExistsError(absl::StrCat("projection ", Quote(p->name), " exists"));
    }
  }
  if (metrics_ != nullptr) p->m = metrics_->BindProjection(p->name);
  projections_.push_back(std::move(p));
  have_projections_.store(true, std::memory_order_relaxed);
  proj_cv_.notify_one();
  return absl::OkStatus();
}

absl::Status EventStore::Impl::WaitForProjections(uint64_t position,
                                                  std::chrono::nanoseconds timeout) const {
  std::unique_lock<std::mutex> lk(proj_mu_);
  const bool done = progress_cv_.wait_for(lk, timeout, [&] {
    for (const auto& p : projections_) {
      if (p->applied_through.load(std::memory_order_relaxed) < position) return false;
    }
    return true;
  });
  if (done) return absl::OkStatus();
  std::string behind;
  for (const auto& p : projections_) {
    const uint64_t at = p->applied_through.load(std::memory_order_relaxed);
    if (at < position) absl::StrAppend(&behind, behind.empty() ? "" : ", ", p->name, " at ", at);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("projections not at position ", position, " in time: ", behind));
}

absl::StatusOr<ProjectionStats> EventStore::Impl::GetProjectionStats(std::string_view name) const {
  std::lock_guard<std::mutex> lk(proj_mu_);
  for (const auto& p : projections_) {
    if (p->name == name) {
      return ProjectionStats{.applied_through = p->applied_through.load(),
                             .updates = p->updates.load(),
                             .errors = p->errors.load(),
                             .retries = p->retries.load()};
    }
  }
  return absl::NotFoundError(absl::StrCat("no projection ", Quote(name)));
}

bool EventStore::Impl::Behind(uint64_t* committed) const {
  *committed = committed_.load(std::memory_order_acquire);
  for (const auto& p : projections_) {
    if (p->applied_through.load(std::memory_order_relaxed) < *committed) return true;
  }
  return false;
}

void EventStore::Impl::WakeProjector() {
  // Pairs with the fence in ProjectorLoop: either it sees the new committed_, or we see it waiting.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (projector_waiting_.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lk(proj_mu_);
    proj_cv_.notify_one();
  }
}

void EventStore::Impl::ProjectorLoop() {
  std::vector<const Event*> chunk;
  std::vector<std::shared_ptr<ProjectionState>> ps;
  while (true) {
    uint64_t committed = 0;
    {
      std::unique_lock<std::mutex> lk(proj_mu_);
      if (stop_now_) return;  // Close(): stop at an event boundary, backlog or not
      while (!Behind(&committed)) {
        if (stop_projector_) return;  // the writer is gone: committed_ is final
        projector_waiting_.store(true, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (Behind(&committed)) {
          projector_waiting_.store(false, std::memory_order_relaxed);
          break;
        }
        proj_cv_.wait(lk);
        projector_waiting_.store(false, std::memory_order_relaxed);
      }
      ps = projections_;
    }
    for (const auto& p : ps) RunChunk(*p, committed, chunk);
  }
}

void EventStore::Impl::RunChunk(ProjectionState& p, uint64_t committed,
                                std::vector<const Event*>& chunk) {
  const uint64_t from = p.applied_through.load(std::memory_order_relaxed) + 1;
  if (from > committed) return;
  const uint64_t to = std::min(committed, from + kProjectionChunk - 1);
  chunk.clear();
  {
    std::shared_lock<std::shared_mutex> lk(data_mu_);
    for (uint64_t pos = from; pos <= to; ++pos) chunk.push_back(&events_[pos - 1]);
  }
  // Events never move in the deque, so they are read without the lock.
  // A slow projection would otherwise report only once per chunk (256 events: minutes at tens of
  // ms each); every 16th event keeps lag and updates current for alerts, at a clock read's cost.
  uint64_t ok = 0, unreported = 0;
  uint64_t done_through = from - 1;
  for (size_t i = 0; i < chunk.size(); ++i) {
    // Close() stops the projector at the next event boundary, whatever the backlog (relaxed: a
    // hint; the flag itself is written and read under proj_mu_ where it decides anything).
    if (stop_hint_.load(std::memory_order_relaxed)) break;
    const Applied a = ApplyWithRetries(p, *chunk[i]);
    if (a == Applied::kStopped) break;
    if (a == Applied::kOk) ++ok, ++unreported;
    done_through = chunk[i]->position;
    if (metrics_ != nullptr && (i % 16 == 15 || i + 1 == chunk.size())) {
      p.m.updates.Inc(unreported);
      unreported = 0;
      p.m.lag.Set(static_cast<double>(NowNs() - chunk[i]->timestamp_ns) * 1e-9);
    }
  }
  if (metrics_ != nullptr && unreported > 0) p.m.updates.Inc(unreported);
  Bump(p.updates, ok);
  {
    std::lock_guard<std::mutex> lk(proj_mu_);
    p.applied_through.store(done_through, std::memory_order_relaxed);
  }
  progress_cv_.notify_all();
}

EventStore::Impl::Applied EventStore::Impl::ApplyWithRetries(ProjectionState& p, const Event& e) {
  auto backoff = options_.projection_backoff;
  for (int attempt = 0;; ++attempt) {
    absl::Status s;
    try {
      s = p.apply(e);
    } catch (const std::exception& ex) {
      s = absl::InternalError(absl::StrCat("exception: ", ex.what()));
    } catch (...) {
      s = absl::InternalError("unknown exception");
    }
    if (s.ok()) return Applied::kOk;
    if (!Transient(s) || attempt >= options_.projection_retries) {
      Bump<uint64_t>(p.errors, 1);
      if (metrics_ != nullptr) p.m.errors.Inc();
      LogSkip(p, e, s, attempt + 1);
      return Applied::kSkipped;
    }
    Bump<uint64_t>(p.retries, 1);
    // The backoff ends early when the store closes: the event stays unapplied (projections are
    // rebuilt by replay), and the projector stops at this event boundary.
    std::unique_lock<std::mutex> lk(proj_mu_);
    if (proj_cv_.wait_for(lk, backoff, [&] { return stop_now_; })) return Applied::kStopped;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
  }
}

void EventStore::Impl::LogSkip(ProjectionState& p, const Event& e, const absl::Status& s,
                               int attempts) {
  const auto now = SteadyClock::now();
  if (p.skips_logged < kLoggedSkips) {
    ++p.skips_logged;
    p.last_skip_log = now;
    std::fprintf(
        stderr,
        "event store: projection \"%s\" skipped position %llu (stream %s, type %s) "
        "after %d attempt%s: %s%s\n",
        p.name.c_str(), static_cast<unsigned long long>(e.position), Quote(e.stream).c_str(),
        Quote(e.type).c_str(), attempts, attempts == 1 ? "" : "s", s.ToString().c_str(),
        p.skips_logged == kLoggedSkips ? " (further skips: one summary line per 10 s)" : "");
    return;
  }
  ++p.skips_unlogged;
  if (now - p.last_skip_log < kSkipLogInterval) return;
  std::fprintf(stderr,
               "event store: projection \"%s\" skipped %llu more events, the last at position %llu "
               "(stream %s, type %s): %s\n",
               p.name.c_str(), static_cast<unsigned long long>(p.skips_unlogged),
               static_cast<unsigned long long>(e.position), Quote(e.stream).c_str(),
               Quote(e.type).c_str(), s.ToString().c_str());
  p.skips_unlogged = 0;
  p.last_skip_log = now;
}

// ---------------------------------------------------------------------------------------------
// EventStore

EventStore::EventStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EventStore::~EventStore() {
  if (impl_ != nullptr) (void)impl_->Close();
}

absl::StatusOr<std::unique_ptr<EventStore>> EventStore::Open(const StoreOptions& options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status s = impl->Open(); !s.ok()) return s;
  impl->Start();
  return std::unique_ptr<EventStore>(new EventStore(std::move(impl)));
}

absl::StatusOr<AppendResult> EventStore::Append(std::string_view stream, ExpectedVersion expected,
                                                std::vector<NewEvent> events) {
  return impl_->Append(stream, expected, events);
}
absl::StatusOr<std::vector<Event>> EventStore::ReadAll(uint64_t from_position, size_t max) const {
  return impl_->ReadAll(from_position, max);
}
absl::StatusOr<std::vector<Event>> EventStore::ReadStream(std::string_view stream,
                                                          uint64_t from_version, size_t max) const {
  return impl_->ReadStream(stream, from_version, max);
}
absl::StatusOr<uint64_t> EventStore::StreamVersion(std::string_view stream) const {
  return impl_->StreamVersion(stream);
}
uint64_t EventStore::LastPosition() const { return impl_->LastPosition(); }
absl::Status EventStore::Health() const { return impl_->Health(); }
uint64_t EventStore::SizeBytes() const { return impl_->SizeBytes(); }
absl::Status EventStore::AddProjection(std::string name, ProjectionFn apply) {
  return impl_->AddProjection(std::move(name), std::move(apply));
}
absl::Status EventStore::WaitForProjections(uint64_t position,
                                            std::chrono::nanoseconds timeout) const {
  return impl_->WaitForProjections(position, timeout);
}
absl::StatusOr<ProjectionStats> EventStore::GetProjectionStats(std::string_view name) const {
  return impl_->GetProjectionStats(name);
}
const RecoveryReport& EventStore::recovery() const { return impl_->recovery(); }
absl::Status EventStore::Close() { return impl_->Close(); }

}  // namespace metrics::store
