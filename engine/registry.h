// The registry of metric families, and the typed families that hand out bound handles
// (engine/metric.h).
//
// clang-format off
//   metrics::Registry reg;
//   auto events = reg.AddCounter({.name = "events_stored_total", .help = "Events stored.",
//                                 .label_names = {"event_type"}});
//   metrics::Counter registered = *events->Bind({"team.registered"});  // fast path: keep it
//   registered.Inc();
//   events->WithLabelValues(type).Inc();                               // lookup path: cached
//   metrics::Snapshot snap = reg.Collect();                            // for exposition/
// clang-format on
//
// Thread-safe: every method may be called from any thread. Registration, Bind and Remove take
// mutexes; handles' Inc/Add never do; WithLabelValues takes one only on a calling thread's first
// use of a label set.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/histogram.h"
#include "engine/internal/family.h"
#include "engine/metric.h"
#include "engine/snapshot.h"

namespace metrics {

inline constexpr size_t kDefaultMaxSeries = 10000;

struct FamilyOptions {
  std::string name;
  std::string help;
  std::vector<std::string> label_names;
  std::vector<std::pair<std::string, std::string>> const_labels;
  // Cardinality cap: label sets beyond it are diverted to one overflow series whose every label
  // value is
  // "__overflow__", and counted in metrics_cardinality_overflow_total{family="<name>"}.
  size_t max_series = kDefaultMaxSeries;
};

// A family of series of one metric type, told apart by label values. A cheap, copyable reference to
// state the registry shares; it stays usable after the family is removed from its registry (lookups
// then yield handles whose writes no scrape reports).
template <typename Handle>
class Family {
 public:
  // The lookup path. Returns this thread's cached handle for the label values, creating the series
  // on first use. Never fails: a wrong number of values, a value that is not valid UTF-8, or a full
  // family diverts the write to the overflow series (counted; a debug build asserts on the first
  // two). The reference stays valid, across any number of further lookups, until its series or
  // family is removed (after which this thread's next lookup lets go of it) or the thread exits;
  // use it on this thread only. Copy it into a Handle to keep it beyond that.
  template <typename... V>
  Handle& WithLabelValues(const V&... values) {
    const std::string_view array[] = {std::string_view(values)..., std::string_view()};
    return WithLabelValues(internal::LabelValues(array, sizeof...(V)));
  }
  Handle& WithLabelValues(internal::LabelValues values) {
    internal::FamilyCache<Handle>& cache = internal::ThreadCaches::Get().For<Handle>(impl_);
    if (Handle* h = cache.Find(values)) return *h;
    return cache.Miss(values);
  }

  // The binding path: a handle to keep, or an error naming the problem (wrong number of values,
  // invalid UTF-8, family full, family removed).
  absl::StatusOr<Handle> Bind(std::initializer_list<std::string_view> values) {
    return Bind(internal::LabelValues(values.begin(), values.size()));
  }
  absl::StatusOr<Handle> Bind(internal::LabelValues values) {
    absl::StatusOr<internal::SeriesPtr> s = impl_->Bind(values);
    if (!s.ok()) return s.status();
    return Handle(*std::move(s));
  }

  // Removes one series: it is gone from the next Collect(); handles still bound to it write to a
  // detached series until they are destroyed, then its cells are zeroed and reused. NotFound if
  // there is no such series.
  absl::Status Remove(std::initializer_list<std::string_view> values) {
    return impl_->Remove(internal::LabelValues(values.begin(), values.size()));
  }
  absl::Status Remove(internal::LabelValues values) { return impl_->Remove(values); }

  const FamilyDesc& desc() const { return impl_->desc(); }
  // Label sets diverted to the overflow series so far.
  uint64_t diverted() const { return impl_->diverted(); }
  // Series currently in the family (the overflow series included once used).
  size_t size() const { return impl_->size(); }

  explicit Family(std::shared_ptr<internal::FamilyImpl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<internal::FamilyImpl> impl_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  Registry() = default;
  // Removes every family, so that their series' cells return to the process as soon as no handle
  // holds them: thread caches let go on their next lookup in any family (or at thread exit).
  // Handles still held keep working on detached series, as after Remove.
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a family, or returns the existing one when name, type, help, label names and constant
  // labels are all identical. Errors: InvalidArgument (bad name, label name, duplicate label,
  // invalid UTF-8 help or constant label value), AlreadyExists (the name is taken by a different
  // definition).
  absl::StatusOr<CounterFamily> AddCounter(const FamilyOptions& options);
  absl::StatusOr<GaugeFamily> AddGauge(const FamilyOptions& options);
  // Also InvalidArgument for a bad bucket list, schema, zero threshold or exponent range, or a
  // label named "le".
  absl::StatusOr<HistogramFamily> AddHistogram(const FamilyOptions& options,
                                               const HistogramConfig& config = {});

  // Removes a whole family: gone from the next Collect(); its handles keep working on detached
  // series.
  absl::Status Remove(std::string_view name);

  // Sums every series over every thread shard. Never blocks writers; concurrent Collect calls are
  // serialized so that each counter reads no lower than in the previous Collect.
  Snapshot Collect() const;

 private:
  // Registers `desc` with `cells` cells per series.
  absl::StatusOr<std::shared_ptr<internal::FamilyImpl>> AddFamily(
      FamilyDesc desc, uint32_t cells, size_t max_series,
      const std::vector<std::string_view>& reserved);

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<internal::FamilyImpl>, std::less<>> families_;
  mutable std::mutex collect_mu_;
};

}  // namespace metrics
