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
//
// Besides the sharded families, a registry holds families computed at scrape time: GaugeFunc and
// CounterFunc (one value read by a callback) and Collectors (any number of families). Their
// callbacks run in Collect() (callback contract at AddGaugeFunc).
//
// Name clashes. Every family claims the names it is exposed under, in either format:
// clang-format off
//   counter   n   claims  n, n_total          (n without "_total" is its OpenMetrics name)
//   counter   n_total     n_total, n
//   gauge     n   claims  n
//   histogram n   claims  n, n_bucket, n_sum, n_count
//   info      n   claims  n, n_info           (text 0.0.4 exposes it as the gauge n_info)
// clang-format on
// A registration whose claims meet any claim of a family, func or collector already registered
// (or of the registry's own metrics_cardinality_overflow_total and
// metrics_shard_allocation_failures_total) is refused, naming both: AlreadyExists, or
// InvalidArgument for the registry's own names. So a histogram "x" and a counter or gauge
// "x_count", "x_sum" or "x_bucket" cannot coexist (in either order), nor a counter "x" and anything
// named "x_total", nor a counter "x_total" and a gauge "x", nor an info "x" and anything named
// "x_info". The one exception: registering a family again with an identical definition returns the
// existing one.
#pragma once

#include <cstddef>
#include <functional>
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
#include "engine/internal/family_cache.h"
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
  // OpenMetrics unit, e.g. "seconds": the name (a counter's without its "_total") must end with
  // "_<unit>", else InvalidArgument. Printed only in OpenMetrics ("# UNIT" after "# TYPE"). Info
  // families have none.
  std::string unit;
};

// Families computed at scrape time, e.g. from /proc or from another library's own counters.
//
// Thread contract: Describe() is called once, in AddCollector. Collect() is called by every
// Registry::Collect() on the scraping thread, one scrape at a time per registry, under no lock a
// metric writer takes; it must not register into, remove from or collect the registry it is
// registered in (FailedPrecondition / an empty snapshot), and should be quick (it delays the
// scrape, never a writer).
class Collector {
 public:
  virtual ~Collector() = default;
  // The families Collect() may produce, fixed for the collector's lifetime. Each is checked like a
  // registration (names, labels, unit, clashes with the registry's families).
  virtual std::vector<FamilyDesc> Describe() const = 0;
  // Appends this scrape's families (engine/snapshot.h has AppendFamily and AppendSample for that).
  // Each family's desc needs only the right name: the registry replaces it with the declared
  // one (type, help, labels, unit). A family that was not declared, has samples with the wrong
  // number of label values, histograms that do not match the declared buckets, or comes twice is
  // left out of the scrape (a debug build asserts on all but the last).
  virtual void Collect(std::vector<FamilySnapshot>& out) const = 0;
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
    internal::FamilyCache<Handle>& cache = internal::ThreadCaches::Get().For<Handle>(impl_, index_);
    if (Handle* h = cache.Find(values)) return *h;
    return cache.Miss(values);
  }

  // The binding path: a handle to keep, or an error naming the problem (wrong number of values,
  // invalid UTF-8, family full, family removed).
  absl::StatusOr<Handle> Bind(std::initializer_list<std::string_view> values) {
    return Bind(internal::LabelValues(values.begin(), values.size()));
  }
  absl::StatusOr<Handle> Bind(internal::LabelValues values) {
    absl::StatusOr<internal::SeriesPtr> s = internal::FamilyBind(*impl_, values);
    if (!s.ok()) return s.status();
    return Handle(*std::move(s));
  }

  // Removes one series: it is gone from the next Collect(); handles still bound to it write to a
  // detached series until they are destroyed, then its cells are zeroed and reused. NotFound if
  // there is no such series.
  absl::Status Remove(std::initializer_list<std::string_view> values) {
    return internal::FamilyRemove(*impl_, internal::LabelValues(values.begin(), values.size()));
  }
  absl::Status Remove(internal::LabelValues values) {
    return internal::FamilyRemove(*impl_, values);
  }

  const FamilyDesc& desc() const { return internal::FamilyDescOf(*impl_); }
  // Label sets diverted to the overflow series so far.
  uint64_t diverted() const { return internal::FamilyDiverted(*impl_); }
  // Series currently in the family (the overflow series included once used).
  size_t size() const { return internal::FamilySize(*impl_); }

  explicit Family(std::shared_ptr<internal::FamilyImpl> impl)
      : impl_(std::move(impl)), index_(internal::FamilyIndex(*impl_)) {}

 private:
  std::shared_ptr<internal::FamilyImpl> impl_;
  uint32_t index_;  // its thread-cache slot, kept here so that lookups need no call to find it
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;
using InfoFamily = Family<Info>;

// The counter of threads whose shard could not be mapped, whose writes go to a sink
// (engine/internal/cells.h). Process-wide: every Registry::Collect() reports it once it is
// non-zero (so snapshots of healthy processes keep their shape); MetricsHandler always does.
inline constexpr std::string_view kShardAllocationFailuresFamily =
    "metrics_shard_allocation_failures_total";

// Inserts kShardAllocationFailuresFamily with its current value (0 included) into a snapshot
// sorted by name, unless it is there already.
void AppendShardAllocationFailures(Snapshot* snapshot);

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
  // An info family: each series (label set) reports 1. Exposed as "# TYPE <name> info" with
  // samples <name>_info{...} 1 in OpenMetrics, as the gauge <name>_info in text 0.0.4. Give the
  // name without "_info" (InvalidArgument otherwise, and for a unit). Without label names its one
  // series (its constant labels) is reported from registration on:
  //   reg.AddInfo({.name = "eventstore_build", .help = "Build.",
  //                .const_labels = {{"version", "1.2"}, {"revision", "abc"}}});
  absl::StatusOr<InfoFamily> AddInfo(const FamilyOptions& options);

  // A gauge or counter of one series (constant labels only: label names are InvalidArgument) whose
  // value `read` returns at scrape time, as client_golang's NewGaugeFunc / NewCounterFunc.
  //
  // Callback contract (also for Collector::Collect): it runs on the thread calling Collect(), one
  // scrape at a time, under the registry's scrape mutex only, which no metric writer and no
  // registration takes, so it may read handles, atomics and its own locks. It must not register
  // into, Remove from or Collect this registry (those return FailedPrecondition, or an empty
  // snapshot, when called from inside it). Once Remove(name) returns it is never called again.
  // An exception it throws leaves its family out of that scrape. A CounterFunc must return a
  // non-negative value that never decreases: one that goes backwards is the caller's bug, and
  // Prometheus reads it as a counter reset.
  absl::Status AddGaugeFunc(const FamilyOptions& options, std::function<double()> read);
  absl::Status AddCounterFunc(const FamilyOptions& options, std::function<double()> read);

  // Registers a collector: Describe()'s families are checked and claimed as one registration
  // (nothing is registered on an error). The registry shares ownership until RemoveCollector.
  absl::Status AddCollector(std::shared_ptr<const Collector> collector);
  // NotFound if it is not registered. Once this returns, the collector is not called again.
  absl::Status RemoveCollector(const Collector* collector);

  // Removes a whole family or func family: gone from the next Collect(); a family's handles keep
  // working on detached series.
  absl::Status Remove(std::string_view name);

  // Sums every series over every thread shard, runs the funcs and collectors, and returns every
  // family sorted by name. Never blocks writers; concurrent Collect calls are serialized so that
  // each counter reads no lower than in the previous Collect.
  Snapshot Collect() const;

 private:
  struct FuncFamily {
    std::shared_ptr<const FamilyDesc> desc;
    std::function<double()> read;
  };
  struct CollectorEntry {
    std::shared_ptr<const Collector> collector;
    std::vector<std::shared_ptr<const FamilyDesc>> descs;  // declared, sorted by name
  };

  // Registers `desc` with `cells` cells per series.
  absl::StatusOr<std::shared_ptr<internal::FamilyImpl>> AddFamily(
      FamilyDesc desc, uint32_t cells, size_t max_series,
      const std::vector<std::string_view>& reserved);
  absl::Status AddFunc(FamilyDesc desc, std::function<double()> read);
  // FailedPrecondition when called from a callback of this registry's Collect.
  absl::Status NotInCallback(std::string_view what) const;
  // Requires mu_: AlreadyExists naming both when a name `desc` claims is taken.
  absl::Status CheckClaimsLocked(const FamilyDesc& desc) const;
  void ClaimLocked(const FamilyDesc& desc);
  void UnclaimLocked(const FamilyDesc& desc);

  // Lock order: collect_mu_, then mu_.
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<internal::FamilyImpl>, std::less<>> families_;
  std::map<std::string, std::shared_ptr<const FuncFamily>, std::less<>> funcs_;
  std::vector<std::shared_ptr<const CollectorEntry>> collectors_;
  // Every name a registered family, func or declared collector family claims -> its name.
  std::map<std::string, std::string, std::less<>> claims_;
  // Held for a whole Collect (callbacks included) and by Remove/RemoveCollector.
  mutable std::mutex collect_mu_;
};

}  // namespace metrics
