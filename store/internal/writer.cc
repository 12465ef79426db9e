#include "store/internal/writer.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/internal/strings.h"

namespace metrics::store::internal {
namespace {

using ::metrics::internal::AV;
using SteadyClock = std::chrono::steady_clock;

// Requests the writer takes from the queue at most per batch.
constexpr size_t kMaxBatch = 1024;
// How long a caller spins for its acknowledgement, and the writer for new requests, before
// sleeping on a condition variable. A round trip through an in-memory store takes microseconds,
// and a sleeping thread can take from tens of microseconds to milliseconds to wake, so even
// callers waiting for an fsync come out faster with a short spin first (the measurements are in
// bench/RESULTS.md and the store benchmarks).
constexpr auto kSpin = std::chrono::microseconds(20);
constexpr auto kPauseSpin = std::chrono::microseconds(10);

int64_t NowNs() { return StoreMetrics::Now(); }

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

// An event id's 16 bytes as a map key: no heap allocation per id.
IdKey KeyOf(std::string_view id) {
  IdKey k;
  std::memcpy(&k.hi, id.data(), 8);
  std::memcpy(&k.lo, id.data() + 8, 8);
  return k;
}

}  // namespace

Writer::Writer(Options options, Index& index, StoreMetrics* metrics,
               std::function<void()> on_published)
    : options_(options), index_(index), metrics_(metrics), on_published_(std::move(on_published)) {}

Writer::~Writer() { (void)Stop(); }

absl::Status Writer::Recover(const RecordView& r, size_t segment_index,
                             const SegmentLog::Segment& segment, uint64_t offset) {
  if (segment_index >= segments_in_index_) {  // its first record
    if (absl::Status s = index_.AddSegment(segment.first_position, segment.path); !s.ok()) return s;
    segments_in_index_ = segment_index + 1;
  }
  WriterStream& e = streams_[AV(r.stream)];
  if (r.stream_version != e.version + 1) {
    return absl::DataLossError(absl::StrCat("stream ", Quote(r.stream), " at version ",
                                            r.stream_version, ", expected ", e.version + 1,
                                            " (position ", r.position, ")"));
  }
  e.version = r.stream_version;
  if (!r.id.empty()) e.ids[KeyOf(r.id)] = r.stream_version;
  last_timestamp_ = std::max(last_timestamp_, r.timestamp_ns);
  placed_.assign(1, {.stream = r.stream, .offset = 0});
  index_.Publish(
      {.first_position = r.position,
       .events = &placed_,
       .length = FramedSize(r.stream.size(), r.type.size(), r.payload.size(), r.id.size()),
       .segment_offset = offset,
       .size_bytes = 0});
  return absl::OkStatus();
}

absl::Status Writer::AddNewSegments() {
  if (log_ == nullptr) return absl::OkStatus();
  const auto& segments = log_->segments();
  for (; segments_in_index_ < segments.size(); ++segments_in_index_) {
    const SegmentLog::Segment& s = segments[segments_in_index_];
    if (absl::Status st = index_.AddSegment(s.first_position, s.path); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status Writer::AttachLog(std::unique_ptr<SegmentLog> log) {
  log_ = std::move(log);
  if (log_ == nullptr) return absl::OkStatus();
  index_.SetSizeBytes(log_->size_bytes());
  return AddNewSegments();
}

void Writer::Start(uint64_t next_position) {
  next_position_ = next_position;
  last_sync_ = SteadyClock::now();
  thread_ = std::thread([this] { Loop(); });
}

absl::Status Writer::Health() const {
  if (closing_.load(std::memory_order_acquire)) {  // pairs with the seq_cst store in Stop()
    return absl::UnavailableError("event store is closed");
  }
  MutexLock lk(health_mu_);
  return health_;
}

void Writer::SetFailed(const absl::Status& cause) {
  absl::Status s = absl::UnavailableError(cause.message());
  failed_ = s;
  MutexLock lk(health_mu_);
  health_ = std::move(s);
}

absl::Status Writer::Stop() {
  MutexLock lk(stop_mu_);
  if (stopped_) return close_status_;
  stopped_ = true;
  closing_.store(true, std::memory_order_seq_cst);
  if (!thread_.joinable()) return absl::OkStatus();
  {
    std::lock_guard<std::mutex> wl(wake_mu_);
    wake_cv_.notify_one();
  }
  thread_.join();  // drains the queue, syncs and closes the log
  return close_status_;
}

// ---------------------------------------------------------------------------------------------
// Caller threads

void Writer::Submit(AppendRequest* r) {
  active_submitters_.fetch_add(1, std::memory_order_seq_cst);
  if (closing_.load(std::memory_order_seq_cst)) {
    active_submitters_.fetch_sub(1, std::memory_order_seq_cst);
    r->status = absl::FailedPreconditionError("the event store is closed");
    return;
  }
  r->accept_ns = NowNs();
  if (!queue_.enqueue(r)) {
    // The queue could not allocate: the request never reached the writer, so nobody would ever
    // complete it. Say so instead of waiting for ever.
    active_submitters_.fetch_sub(1, std::memory_order_seq_cst);
    r->status =
        absl::ResourceExhaustedError("the event store's queue could not grow (out of memory)");
    return;
  }
  active_submitters_.fetch_sub(1, std::memory_order_seq_cst);
  // Pairs with the fence in WaitForRequests: either the writer sees our request, or we see it idle.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (writer_idle_.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lk(wake_mu_);
    wake_cv_.notify_one();
  }

  // An append queued while the writer is in an fsync waits for that fsync and then its own: far
  // longer than a spin, so it sleeps at once and leaves the CPUs to the writer and the network
  // (with many concurrent HTTP appenders, spinning took a large share of all CPU time).
  if (syncing_.load(std::memory_order_relaxed) ||  // a hint; the wait below is exact
      !SpinUntil([&] { return r->Done(); })) {
    r->Sleep();
  }
}

// ---------------------------------------------------------------------------------------------
// Writer thread

void Writer::Loop() {
  ConsumerToken token(queue_);
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

size_t Writer::WaitForRequests(ConsumerToken& token, AppendRequest** out) {
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
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the one in Submit()
    n = queue_.try_dequeue_bulk(token, out, kMaxBatch);
    if (n > 0) break;
    if (closing_.load(std::memory_order_seq_cst)) {
      if (active_submitters_.load(std::memory_order_seq_cst) == 0) {
        // Every Submit() that passed its closing check has enqueued: take what is left.
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

size_t Writer::Gather(ConsumerToken& token, AppendRequest** batch, size_t n) {
  // Sleeps rather than spins: the callers it waits for need a CPU to wake up and append.
  const SteadyClock::time_point deadline = SteadyClock::now() + gather_window_;
  std::unique_lock<std::mutex> lk(wake_mu_);
  while (n < gather_target_ && !closing_.load(std::memory_order_relaxed)) {
    writer_idle_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the one in Submit()
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

uint64_t Writer::PositionOf(const AppendRequest* r, uint64_t version) const {
  for (const AppendRequest* a : accepted_) {  // this batch, not yet in the Index
    if (a->entry == r->entry && version > a->prev_version &&
        version <= a->prev_version + a->events->size()) {
      return a->result.first_position + (version - a->prev_version - 1);
    }
  }
  return index_.PublishedPositionWriter(r->stream, version);
}

bool Writer::Duplicate(WriterStream& e, AppendRequest* r) {
  const std::vector<NewEvent>& events = *r->events;
  auto first = e.ids.find(KeyOf(events.front().id));
  bool same = first != e.ids.end();
  for (size_t i = 0; same && i < events.size(); ++i) {
    auto it = e.ids.find(KeyOf(events[i].id));
    same = it != e.ids.end() && it->second == first->second + i;
  }
  if (same) {
    const uint64_t v = first->second;
    const uint64_t last = v + events.size() - 1;
    r->entry = &e;
    r->result = {.first_position = PositionOf(r, v),
                 .last_position = PositionOf(r, last),
                 .last_stream_version = last,
                 .duplicate = true};
    return true;
  }
  for (size_t i = 0; i < events.size(); ++i) {
    if (auto it = e.ids.find(KeyOf(events[i].id)); it != e.ids.end()) {
      r->status = absl::FailedPreconditionError(absl::StrCat(
          "event #", i, "'s id is already in stream ", Quote(r->stream), " at version ", it->second,
          ", but not as this same run of events: nothing written"));
      return true;
    }
  }
  return false;
}

void Writer::SyncNow() {
  if (log_ == nullptr || !unsynced_ || !failed_.ok()) return;
  if (absl::Status s = log_->Sync(); !s.ok()) {
    SetFailed(absl::Status(s.code(),
                           absl::StrCat("event store stopped accepting appends: ", s.message())));
  }
  unsynced_ = false;
  last_sync_ = SteadyClock::now();
}

void Writer::ProcessBatch(AppendRequest** reqs, size_t n) {
  accepted_.clear();
  if (!failed_.ok()) {
    for (size_t i = 0; i < n; ++i) {
      reqs[i]->status = failed_;
      reqs[i]->Complete();
    }
    return;
  }

  // 1. Check expected versions in queue order, assign positions and versions, encode.
  buf_.clear();
  placed_.clear();
  uint64_t pos = next_position_;
  uint64_t payload = 0;
  for (size_t i = 0; i < n; ++i) {
    AppendRequest* r = reqs[i];
    auto found = streams_.find(AV(r->stream));
    WriterStream* e = found == streams_.end() ? nullptr : &found->second;
    uint64_t version = e == nullptr ? 0 : e->version;
    if (e != nullptr && !r->events->front().id.empty() && Duplicate(*e, r)) continue;
    if (!r->expected.Matches(version)) {
      r->status = absl::FailedPreconditionError(
          absl::StrCat("wrong expected version for stream ", Quote(r->stream), ": expected ",
                       r->expected.ToString(), ", actual ",
                       version == 0 ? std::string("no stream") : absl::StrCat(version)));
      continue;
    }
    if (e == nullptr) e = &streams_.try_emplace(std::string(r->stream)).first->second;
    r->entry = e;
    r->prev_version = version;
    r->timestamp_ns = last_timestamp_ = std::max(r->accept_ns, last_timestamp_);
    r->result.first_position = pos;
    const NewEvent* const last = &r->events->back();
    for (const NewEvent& ev : *r->events) {
      placed_.push_back({.stream = r->stream, .offset = buf_.size()});
      AppendRecord(&buf_, {.position = pos++,
                           .timestamp_ns = r->timestamp_ns,
                           .stream_version = ++version,
                           .stream = r->stream,
                           .type = ev.type,
                           .payload = ev.payload,
                           .id = ev.id,
                           .ends_request = &ev == last});
    }
    r->result.last_position = pos - 1;
    r->result.last_stream_version = version;
    if (!r->events->front().id.empty()) {
      uint64_t v = r->prev_version;
      for (const NewEvent& ev : *r->events) e->ids[KeyOf(ev.id)] = ++v;
    }
    e->version = version;
    payload += r->payload_bytes;
    accepted_.push_back(r);
  }

  if (!accepted_.empty()) {
    // 2. Make the batch durable per the policy.
    uint64_t size;
    uint64_t segment_offset = 0;
    int64_t durable_ns = 0;  // the clock once the batch is durable, when something needs it
    if (log_ != nullptr) {
      absl::Status s = log_->Append(&buf_, next_position_);
      if (absl::Status a = AddNewSegments(); s.ok() && !a.ok()) s = a;  // after a roll
      if (s.ok() && options_.fsync == FsyncPolicy::kEveryBatch) {
        // The metrics' clock (cheaper than steady_clock): the read after the fsync is
        // also the end of event_processing_duration_seconds, so under this policy the histogram
        // costs no clock read of its own. A wall-clock step only mis-sizes one gather window.
        const int64_t start = NowNs();
        syncing_.store(true, std::memory_order_relaxed);  // a hint for Submit's spin only
        s = log_->Sync();
        syncing_.store(false, std::memory_order_relaxed);
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
          (*it)->entry->version = (*it)->prev_version;
          for (const NewEvent& ev : *(*it)->events) {
            if (!ev.id.empty()) (*it)->entry->ids.erase(KeyOf(ev.id));
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
        for (size_t i = 0; i < n; ++i) reqs[i]->Complete();
        return;
      }
      unsynced_ = options_.fsync != FsyncPolicy::kEveryBatch;
      size = log_->size_bytes();
      segment_offset = log_->last_append_offset();
    } else {
      size = index_.SizeBytes() + buf_.size();
    }

    // 3. Count and time it, then publish.
    if (metrics_ != nullptr) {
      if (durable_ns == 0) durable_ns = NowNs();  // one clock read per batch
      for (AppendRequest* r : accepted_) {
        for (const NewEvent& ev : *r->events) metrics_->CountEvent(ev.type);
        metrics_->Released(durable_ns, r->accept_ns, r->result.first_position);
      }
      metrics_->BatchStored(payload, size);
    }
    index_.Publish({.first_position = next_position_,
                    .events = &placed_,
                    .length = buf_.size(),
                    .segment_offset = segment_offset,
                    .records = log_ == nullptr ? buf_.data() : nullptr,
                    .size_bytes = size});
    next_position_ = pos;
  }

  // 4. Release the callers, then hand the events to the projector.
  for (size_t i = 0; i < n; ++i) reqs[i]->Complete();
  if (!accepted_.empty() && on_published_) on_published_();
  if (unsynced_ && options_.fsync == FsyncPolicy::kInterval &&
      SteadyClock::now() - last_sync_ >= std::chrono::milliseconds(options_.interval_ms)) {
    SyncNow();
  }
}

}  // namespace metrics::store::internal
