#include "store/event_store.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/registry.h"
#include "store/internal/append_request.h"
#include "store/internal/append_validation.h"
#include "store/internal/index.h"
#include "store/internal/mutex.h"
#include "store/internal/projector.h"
#include "store/internal/record.h"
#include "store/internal/segment_log.h"
#include "store/internal/store_metrics.h"
#include "store/internal/writer.h"

namespace metrics::store {
namespace {

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

// The façade: validation on the caller's thread, and the order in which the parts start and stop.
// The parts own their threads' state: store/internal/writer.h (the writer thread),
// store/internal/index.h (what readers see), store/internal/projector.h (the projector thread).
class EventStore::Impl {
 public:
  explicit Impl(const StoreOptions& options)
      : options_(options), index_(options.data_dir.empty()) {}
  ~Impl() { (void)Close(); }

  absl::Status Open();
  absl::Status Close();
  absl::StatusOr<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                                      std::vector<NewEvent>& events);
  absl::Status ValidateStream(std::string_view stream) const;

  const StoreOptions options_;
  std::unique_ptr<internal::StoreMetrics> metrics_;  // null: no registry
  internal::Index index_;
  // Destroyed in reverse: the writer (whose thread wakes the projector) before the projector,
  // both before the index they read.
  std::unique_ptr<internal::Projector> projector_;
  std::unique_ptr<internal::Writer> writer_;
  RecoveryReport recovery_;
  internal::Mutex close_mu_;
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;
  absl::Status close_status_ ABSL_GUARDED_BY(close_mu_);
};

absl::Status EventStore::Impl::Open() {
  if (options_.registry != nullptr) {
    auto m = internal::StoreMetrics::Create(*options_.registry, options_.max_event_types);
    if (!m.ok()) return m.status();
    metrics_ = *std::move(m);
  }
  projector_ = std::make_unique<internal::Projector>(
      internal::Projector::Options{.retries = options_.projection_retries,
                                   .backoff = options_.projection_backoff},
      index_, metrics_.get());
  writer_ = std::make_unique<internal::Writer>(
      internal::Writer::Options{.fsync = options_.fsync, .interval_ms = options_.interval_ms},
      index_, metrics_.get(), [this] { projector_->Wake(); });
  uint64_t next_position = 1;
  if (!options_.data_dir.empty()) {
    internal::RecoveryResult rr;
    auto on_record = [this](const internal::RecordView& r, size_t segment_index,
                            const internal::SegmentLog::Segment& segment,
                            uint64_t offset) -> absl::Status {
      return writer_->Recover(r, segment_index, segment, offset);
    };
    auto log = internal::SegmentLog::Open({.dir = options_.data_dir,
                                           .segment_bytes = options_.segment_bytes,
                                           // Under every policy: a rolled segment is
                                           // complete, and recovery reads a bad record in a
                                           // segment that is not the last as corruption.
                                           .sync_on_roll = true},
                                          on_record, &rr);
    if (!log.ok()) return log.status();
    recovery_ = {.segments = rr.segments,
                 .events = rr.records,
                 .truncated_bytes = rr.truncated_bytes,
                 .truncated_file = rr.truncated_file,
                 .truncated_offset = rr.truncated_offset};
    next_position = rr.records + 1;
    if (absl::Status s = writer_->AttachLog(*std::move(log)); !s.ok()) return s;
  }
  if (metrics_ != nullptr) {
    if (recovery_.truncated_bytes > 0) metrics_->RecoveryTruncated(recovery_.truncated_bytes);
    metrics_->SetSize(index_.SizeBytes());
  }
  writer_->Start(next_position);
  projector_->Start();
  return absl::OkStatus();
}

absl::Status EventStore::Impl::Close() {
  internal::MutexLock lk(close_mu_);
  if (closed_) return close_status_;
  closed_ = true;
  if (writer_ == nullptr) return absl::OkStatus();
  // The projector first, at its next event boundary (and out of any retry backoff): projections
  // are rebuilt by replay, so a backlog is no reason to wait. Then the writer drains the queue
  // (every queued append is completed), syncs and closes the log.
  projector_->Stop();
  close_status_ = writer_->Stop();
  return close_status_;
}

// ---------------------------------------------------------------------------------------------
// Append (caller threads)

absl::Status EventStore::Impl::ValidateStream(std::string_view stream) const {
  return internal::ValidateStreamId(stream, options_.max_stream_bytes);
}

absl::StatusOr<AppendResult> EventStore::Impl::Append(std::string_view stream,
                                                      ExpectedVersion expected,
                                                      std::vector<NewEvent>& events) {
  internal::AppendRequest req;
  if (absl::Status s = internal::ValidateAppend(stream, events,
                                                {.max_stream_bytes = options_.max_stream_bytes,
                                                 .max_type_bytes = options_.max_type_bytes,
                                                 .max_payload_bytes = options_.max_payload_bytes},
                                                &req.payload_bytes);
      !s.ok()) {
    return s;
  }
  req.stream = stream;
  req.expected = expected;
  req.events = &events;
  writer_->Submit(&req);
  if (!req.status.ok()) return req.status;
  return req.result;
}

// ---------------------------------------------------------------------------------------------
// EventStore

EventStore::EventStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EventStore::~EventStore() = default;

absl::StatusOr<std::unique_ptr<EventStore>> EventStore::Open(const StoreOptions& options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status s = impl->Open(); !s.ok()) return s;
  return std::unique_ptr<EventStore>(new EventStore(std::move(impl)));
}

absl::StatusOr<AppendResult> EventStore::Append(std::string_view stream, ExpectedVersion expected,
                                                std::vector<NewEvent> events) {
  return impl_->Append(stream, expected, events);
}
absl::StatusOr<std::vector<Event>> EventStore::ReadAll(uint64_t from_position, size_t max) const {
  return impl_->index_.ReadAll(from_position == 0 ? 1 : from_position, max);
}
absl::StatusOr<std::vector<Event>> EventStore::ReadStream(std::string_view stream,
                                                          uint64_t from_version, size_t max) const {
  if (absl::Status s = impl_->ValidateStream(stream); !s.ok()) return s;
  return impl_->index_.ReadStream(stream, from_version == 0 ? 1 : from_version, max);
}
absl::StatusOr<uint64_t> EventStore::StreamVersion(std::string_view stream) const {
  if (absl::Status s = impl_->ValidateStream(stream); !s.ok()) return s;
  return impl_->index_.StreamVersion(stream);
}
uint64_t EventStore::LastPosition() const { return impl_->index_.LastPosition(); }
absl::Status EventStore::Health() const { return impl_->writer_->Health(); }
uint64_t EventStore::SizeBytes() const { return impl_->index_.SizeBytes(); }
absl::Status EventStore::AddProjection(std::string name, ProjectionFn apply) {
  return impl_->projector_->Add(std::move(name), std::move(apply));
}
absl::Status EventStore::WaitForProjections(uint64_t position,
                                            std::chrono::nanoseconds timeout) const {
  return impl_->projector_->WaitFor(position, timeout);
}
absl::StatusOr<ProjectionStats> EventStore::GetProjectionStats(std::string_view name) const {
  return impl_->projector_->Stats(name);
}
const RecoveryReport& EventStore::recovery() const { return impl_->recovery_; }
absl::Status EventStore::Close() { return impl_->Close(); }

}  // namespace metrics::store
