// Bound metric handles: what instrumented code holds and calls on its hot path. Light on purpose:
// it pulls in no registry, container or exposition header. Handles come from a family
// (engine/registry.h).
#pragma once

#include <cassert>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/status/status.h"
#include "engine/internal/cells.h"
#include "engine/internal/series.h"

namespace metrics {
namespace internal {
struct HandleAccess;
}  // namespace internal

// An exemplar's labels, e.g. {{"trace_id", id}}: label names as for metrics
// ([a-zA-Z_][a-zA-Z0-9_]*), values UTF-8, names and values together at most 128 runes (OpenMetrics'
// limit).
using ExemplarLabels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// A monotonically increasing count, sharded per thread.
//
// Thread-safe. Inc/Add touch only the calling thread's own cells (a relaxed load and store, no
// atomic read-modify-write, no lock, no allocation after the thread's first write), so any number
// of threads may share one handle without contending. A scrape sums the cells of every shard.
//
// Integer increments (Inc) and fractional ones (Add) go to two separate cells, so integer counting
// stays exact and as cheap as an integer add; the reported value is their sum.
//
// A handle keeps its series alive: after the series (or its family) is removed, the handle still
// works but its counts go to the detached series, which no scrape reports; its cells are recycled
// only after the last handle is gone, so an old handle can never write into another series. A
// default-constructed handle writes to a sink, and so does a moved-from one (its series went with
// the move; writing on through the old cell index would reach whatever series recycles it).
// Copying a handle is an atomic reference-count update: copy handles at set-up, not per event.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = default;
  Counter& operator=(const Counter&) = default;
  Counter(Counter&& o) noexcept : series_(std::move(o.series_)), cell_(std::exchange(o.cell_, 0)) {}
  Counter& operator=(Counter&& o) noexcept {
    if (this != &o) {
      series_ = std::move(o.series_);
      cell_ = std::exchange(o.cell_, 0);
    }
    return *this;
  }

  // Adds 1.
  // Always inlined: a call would cost more than the increment itself (GCC outlines it otherwise
  // where a caller has several increments).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Inc() { internal::CellAdd(internal::ThreadCells(), cell_, 1); }

  // Adds n. A negative n (from a signed type) is ignored and fires a debug assertion: counters only
  // go up.
  template <std::integral T>
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Inc(T n) {
    if constexpr (std::is_signed_v<T>) {
      assert(n >= 0 && "Counter::Inc: negative increment ignored");
      if (n < 0) return;
    }
    internal::CellAdd(internal::ThreadCells(), cell_, static_cast<uint64_t>(n));
  }

  // Adds a non-negative amount. A negative or NaN v leaves the counter unchanged and fires a debug
  // assertion.
  void Add(double v) {
    assert(v >= 0 && "Counter::Add: negative or NaN increment ignored");
    if (!(v >= 0)) return;  // also rejects NaN
    internal::CellAddDouble(internal::ThreadCells(), cell_ + 1, v);
  }

  // Inc() / Add(v), and makes {labels, the increment, now} the series' exemplar, which OpenMetrics
  // and protobuf scrapes report with the counter. Costs an allocation and a short per-series lock
  // (engine/internal/exemplar_slots.h) that plain Inc never takes; use it for the sampled events
  // whose trace or request id is worth a click, not for every event. On invalid labels the counter
  // still counts, no exemplar is kept, and the error names the problem.
  // A negative or NaN v changes nothing and is an error.
  absl::Status IncWithExemplar(ExemplarLabels labels);
  absl::Status AddWithExemplar(double v, ExemplarLabels labels);

  // Cells per counter series: [integer count, sum of fractional increments as double bits].
  static constexpr uint32_t kCells = 2;

  explicit Counter(internal::SeriesPtr s) : series_(std::move(s)), cell_(series_->first_cell) {}

 private:
  friend struct internal::HandleAccess;
  internal::SeriesPtr series_;  // keeps the cells allocated while this handle exists
  uint32_t cell_ = 0;           // 0: the sink block
};

// A value that goes up and down.
//
// Cost model: unlike Counter, a gauge is ONE shared cell (a std::atomic<double> in bits), because
// Set() must win over every other thread's adds. Set() is a plain atomic store. Add/Inc/Dec are a
// compare-and-swap loop on that cell: cheap when one thread owns the gauge, but contended (tens of
// ns, cache line bouncing) when several threads update the same gauge at a high rate. Keep
// per-event code on counters and histograms; use gauges for values that are set (sizes, lags,
// timestamps) or changed at a low rate.
//
// A moved-from gauge writes to a sink, as a default-constructed one does.
class Gauge {
 public:
  Gauge() = default;

  void Set(double v) { cell().store(internal::DoubleToBits(v), std::memory_order_relaxed); }
  void Add(double v) {
    std::atomic<uint64_t>& c = cell();
    uint64_t old = c.load(std::memory_order_relaxed);
    // Relaxed CAS: a gauge orders nothing else; each update is atomic on its own.
    while (!c.compare_exchange_weak(old, internal::DoubleToBits(internal::BitsToDouble(old) + v),
                                    std::memory_order_relaxed)) {
    }
  }
  void Sub(double v) { Add(-v); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  double Value() const {
    return internal::BitsToDouble(const_cast<Gauge*>(this)->cell().load(std::memory_order_relaxed));
  }

  explicit Gauge(internal::SeriesPtr s) : series_(std::move(s)) {}

 private:
  friend struct internal::HandleAccess;
  std::atomic<uint64_t>& cell();
  internal::SeriesPtr series_;
};

// One series of an Info family (OpenMetrics' info type): the information is in its labels and its
// value is always 1. Holding the handle only keeps the series alive, as for the other handles;
// there is nothing to write. Thread-safe (immutable).
class Info {
 public:
  Info() = default;
  explicit Info(internal::SeriesPtr s) : series_(std::move(s)) {}

 private:
  friend struct internal::HandleAccess;
  internal::SeriesPtr series_;
};

namespace internal {
// Written by default-constructed gauges; never reported.
inline std::atomic<uint64_t> gauge_sink{0};
}  // namespace internal

inline std::atomic<uint64_t>& Gauge::cell() {
  return series_ ? series_->gauge_bits : internal::gauge_sink;
}

}  // namespace metrics
