#include "store/internal/projector.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/internal/strings.h"
#include "engine/validate.h"

namespace metrics::store::internal {
namespace {

using ::metrics::internal::AV;
using SteadyClock = std::chrono::steady_clock;

// Events a projection handles per step before the projector looks at the others.
constexpr uint64_t kChunk = 256;
constexpr uint64_t kLoggedSkips = 10;
constexpr auto kSkipLogInterval = std::chrono::seconds(10);
// After a failed read of the log (an I/O error), the projector tries again after this long.
constexpr auto kReadRetry = std::chrono::milliseconds(100);

std::string Quote(std::string_view s) { return absl::StrCat("\"", absl::CHexEscape(AV(s)), "\""); }

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

}  // namespace

struct Projector::Projection {
  std::string name;
  ProjectionFn apply;
  // Stored under mu_ (WaitFor reads it there), loaded anywhere (relaxed: a progress figure).
  std::atomic<uint64_t> applied_through{0};
  // Written by the projector thread only (relaxed: statistics).
  std::atomic<uint64_t> updates{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> retries{0};
  // Bound once; default handles (no registry) are never touched.
  StoreMetrics::ProjectionHandles m;
  // Skip log, projector thread only: the first kLoggedSkips skips a line each, then one summary
  // line per kSkipLogInterval with the count since the last line.
  uint64_t skips_logged = 0;
  uint64_t skips_unlogged = 0;
  SteadyClock::time_point last_skip_log{};
};

void Projector::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Projector::Stop() {
  {
    MutexLock lk(mu_);
    stopping_ = true;
    stop_hint_.store(true, std::memory_order_relaxed);  // a hint; stopping_ decides, under mu_
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status Projector::Add(std::string name, ProjectionFn apply) {
  if (name.empty()) return absl::InvalidArgumentError("projection name is empty");
  if (!IsValidUtf8(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("projection name ", Quote(name), " is not valid UTF-8"));
  }
  if (!apply) {
    return absl::InvalidArgumentError(
        absl::StrCat("projection ", Quote(name), " has no apply function"));
  }
  auto p = std::make_shared<Projection>();
  p->name = std::move(name);
  p->apply = std::move(apply);
  MutexLock lk(mu_);
  if (stopping_) return absl::FailedPreconditionError("the event store is closed");
  for (const auto& q : projections_) {
    if (q->name == p->name) {
      return absl::AlreadyExistsError(absl::StrCat("projection ", Quote(p->name), " exists"));
    }
  }
  if (metrics_ != nullptr) p->m = metrics_->BindProjection(p->name);
  projections_.push_back(std::move(p));
  have_projections_.store(true, std::memory_order_relaxed);  // a hint for Wake()
  cv_.notify_one();
  return absl::OkStatus();
}

absl::Status Projector::WaitFor(uint64_t position, std::chrono::nanoseconds timeout) const {
  const auto deadline = SteadyClock::now() + timeout;
  MutexLock lk(mu_);
  while (true) {
    std::string behind;
    for (const auto& p : projections_) {
      const uint64_t at = p->applied_through.load(std::memory_order_relaxed);
      if (at < position) absl::StrAppend(&behind, behind.empty() ? "" : ", ", p->name, " at ", at);
    }
    if (behind.empty()) return absl::OkStatus();
    if (progress_cv_.wait_until(lk.native(), deadline) == std::cv_status::timeout) {
      return absl::DeadlineExceededError(
          absl::StrCat("projections not at position ", position, " in time: ", behind));
    }
  }
}

absl::StatusOr<ProjectionStats> Projector::Stats(std::string_view name) const {
  MutexLock lk(mu_);
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

bool Projector::Behind(uint64_t* last) const {
  *last = index_.LastPosition();
  for (const auto& p : projections_) {
    if (p->applied_through.load(std::memory_order_relaxed) < *last) return true;
  }
  return false;
}

void Projector::Wake() {
  if (!have_projections_.load(std::memory_order_relaxed)) return;
  // Pairs with the fence in Loop: either it sees the new last position, or we see it waiting.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (waiting_.load(std::memory_order_relaxed)) {
    MutexLock lk(mu_);
    cv_.notify_one();
  }
}

bool Projector::SleepUnlessStopped(std::chrono::milliseconds d) {
  const auto deadline = SteadyClock::now() + d;
  MutexLock lk(mu_);
  while (!stopping_) {
    if (cv_.wait_until(lk.native(), deadline) == std::cv_status::timeout) return stopping_;
  }
  return true;
}

void Projector::Loop() {
  std::vector<std::shared_ptr<Projection>> ps;
  while (true) {
    uint64_t last = 0;
    {
      MutexLock lk(mu_);
      if (stopping_) return;  // stop at an event boundary, backlog or not
      while (!Behind(&last)) {
        waiting_.store(true, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the one in Wake()
        if (Behind(&last)) {
          waiting_.store(false, std::memory_order_relaxed);
          break;
        }
        cv_.wait(lk.native());
        waiting_.store(false, std::memory_order_relaxed);
        if (stopping_) return;
      }
      ps = projections_;
    }
    for (const auto& p : ps) RunChunk(*p, last);
  }
}

void Projector::RunChunk(Projection& p, uint64_t last) {
  const uint64_t from = p.applied_through.load(std::memory_order_relaxed) + 1;
  if (from > last) return;
  const uint64_t n = std::min(last - from + 1, kChunk);
  absl::StatusOr<std::vector<Event>> events = index_.ReadAll(from, n);
  if (!events.ok()) {
    std::fprintf(stderr, "event store: projection \"%s\" cannot read position %llu: %s\n",
                 p.name.c_str(), static_cast<unsigned long long>(from),
                 events.status().ToString().c_str());
    (void)SleepUnlessStopped(kReadRetry);
    return;
  }
  chunk_ = *std::move(events);
  // A slow projection would otherwise report only once per chunk (256 events: minutes at tens of
  // ms each); every 16th event keeps lag and updates current for alerts, at a clock read's cost.
  uint64_t ok = 0, unreported = 0;
  uint64_t done_through = from - 1;
  for (size_t i = 0; i < chunk_.size(); ++i) {
    // Stop() stops the projector at the next event boundary, whatever the backlog (relaxed: a
    // hint; stopping_ itself is written and read under mu_ where it decides anything).
    if (stop_hint_.load(std::memory_order_relaxed)) break;
    const Applied a = ApplyWithRetries(p, chunk_[i]);
    if (a == Applied::kStopped) break;
    if (a == Applied::kOk) ++ok, ++unreported;
    done_through = chunk_[i].position;
    if (metrics_ != nullptr && (i % 16 == 15 || i + 1 == chunk_.size())) {
      p.m.updates.Inc(unreported);
      unreported = 0;
      p.m.lag.Set(static_cast<double>(StoreMetrics::Now() - chunk_[i].timestamp_ns) * 1e-9);
    }
  }
  if (metrics_ != nullptr && unreported > 0) p.m.updates.Inc(unreported);
  Bump(p.updates, ok);
  {
    MutexLock lk(mu_);
    p.applied_through.store(done_through, std::memory_order_relaxed);
  }
  progress_cv_.notify_all();
}

Projector::Applied Projector::ApplyWithRetries(Projection& p, const Event& e) {
  auto backoff = options_.backoff;
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
    if (!Transient(s) || attempt >= options_.retries) {
      Bump<uint64_t>(p.errors, 1);
      if (metrics_ != nullptr) p.m.errors.Inc();
      LogSkip(p, e, s, attempt + 1);
      return Applied::kSkipped;
    }
    Bump<uint64_t>(p.retries, 1);
    // The backoff ends early on Stop(): the event stays unapplied (projections are rebuilt by
    // replay), and the projector stops at this event boundary.
    if (SleepUnlessStopped(backoff)) return Applied::kStopped;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
  }
}

void Projector::LogSkip(Projection& p, const Event& e, const absl::Status& s, int attempts) {
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

}  // namespace metrics::store::internal
