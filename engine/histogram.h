// The histogram handle: what instrumented code holds to record observations. Light, like
// engine/metric.h.
#pragma once

#include <cstdint>
#include <utility>

#include "absl/base/attributes.h"
#include "engine/internal/cells.h"
#include "engine/internal/histogram_layout.h"
#include "engine/internal/series.h"
#include "engine/metric.h"  // ExemplarLabels

namespace metrics {
namespace internal {
struct HandleAccess;
const HistogramLayout&
DefaultHistogramLayout();  // for default-constructed handles (they write to the sink)
}  // namespace internal

// Distribution of observed values in log buckets (native-histogram geometry) with exact classic
// `le` buckets (engine/internal/histogram_layout.h has the geometry and what NaN, +-Inf, 0 and
// out-of-range values do).
//
// Thread-safe. Observe() touches only the calling thread's cells: it computes a slot from the
// double's bits (a table load and a compare, a second compare for classic boundaries) and adds to
// that slot's count and sum cells with relaxed loads and stores, no atomic read-modify-write. Each
// slot carries its own partial sum, so successive observations in different buckets do not wait on
// one shared sum cell; Collect() adds them up.
//
// Memory: layout.num_cells() * 8 bytes of address space per series per live thread: 670 cells
// (5.4 KiB) with the defaults (native range derived from the buckets), 24 cells (192 bytes) for
// the default buckets with HistogramConfig::native = false. Only the pages holding the buckets a
// thread actually hits are committed. Handles keep their series alive and never write into another
// series after removal, as Counter. A moved-from handle writes to the sink with the default
// layout: the layout belongs to the series that went with the move, and may be freed with it.
class Histogram {
 public:
  Histogram() : layout_(&internal::DefaultHistogramLayout()) {}
  explicit Histogram(internal::SeriesPtr s)
      : series_(std::move(s)), layout_(series_->layout.get()), base_(series_->first_cell) {}
  Histogram(const Histogram&) = default;
  Histogram& operator=(const Histogram&) = default;
  Histogram(Histogram&& o) noexcept
      : series_(std::move(o.series_)),
        layout_(std::exchange(o.layout_, &internal::DefaultHistogramLayout())),
        base_(std::exchange(o.base_, 0)) {}
  Histogram& operator=(Histogram&& o) noexcept {
    if (this != &o) {
      series_ = std::move(o.series_);
      layout_ = std::exchange(o.layout_, &internal::DefaultHistogramLayout());
      base_ = std::exchange(o.base_, 0);
    }
    return *this;
  }

  void Observe(double v) {
    // The rare cases (first write of a thread, values the table does not resolve) leave through
    // one out-of-line tail call, so this path needs no saved registers and no stack.
    uint64_t* const cells = internal::tls_cells;
    const uint64_t s = layout_->FastSlot(v);
    if (ABSL_PREDICT_FALSE(cells == nullptr || s == internal::HistogramLayout::kNoFastSlot)) {
      return ObserveSlow(v);
    }
    uint64_t* slot = cells + base_ + 2 * s;
    internal::CellAdd(slot, 0, 1);
    internal::CellAddDouble(slot, 1, v);
  }

  // Observe(v), and makes {labels, v, now} the exemplar of the classic bucket v falls in (the
  // +Inf bucket included), reported on that bucket by OpenMetrics and protobuf scrapes. Cost and
  // errors as Counter::AddWithExemplar: plain Observe never pays for it.
  absl::Status ObserveWithExemplar(double v, ExemplarLabels labels);

 private:
  friend struct internal::HandleAccess;
  ABSL_ATTRIBUTE_NOINLINE void ObserveSlow(double v);
  internal::SeriesPtr series_;
  const internal::HistogramLayout* layout_;
  uint32_t base_ = 0;  // 0: the sink block
};

}  // namespace metrics
