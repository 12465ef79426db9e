#include "engine/registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/internal/cells.h"
#include "engine/internal/strings.h"
#include "engine/validate.h"

namespace metrics {
namespace {

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "unknown";
}

// Names what differs between an existing definition and a new one, for the AlreadyExists message.
std::string Difference(const FamilyDesc& a, const FamilyDesc& b) {
  if (a.type != b.type) return absl::StrCat("type ", TypeName(a.type), " vs ", TypeName(b.type));
  if (a.help != b.help) return "help text differs";
  if (a.label_names != b.label_names) {
    return absl::StrCat("label names [", absl::StrJoin(a.label_names, ","), "] vs [",
                        absl::StrJoin(b.label_names, ","), "]");
  }
  if (a.const_labels != b.const_labels) return "constant labels differ";
  if (a.histogram && b.histogram && !(a.histogram->config() == b.histogram->config())) {
    return "histogram buckets, schema or range differ";
  }
  return "";
}

constexpr std::string_view kOverflowFamily = "metrics_cardinality_overflow_total";

// Runs of non-zero counts among counts[lo..hi], bucket index = i_lo + position.
NativeBuckets ToSpans(int32_t i_lo, const std::vector<uint64_t>& counts, int32_t lo, int32_t hi) {
  NativeBuckets out;
  int32_t next = 0;  // index just past the previous span
  bool first = true;
  for (int32_t r = lo; r <= hi; ++r) {
    if (counts[r] == 0) continue;
    int32_t i = i_lo + r;
    if (!first && i == next) {
      ++out.spans.back().length;
    } else {
      out.spans.push_back({first ? i : i - next, 1});
      first = false;
    }
    out.counts.push_back(counts[r]);
    next = i + 1;
  }
  return out;
}

// One pass over each shard's block per series; every derived figure (count, cumulative classic
// buckets, native buckets) comes from the same read of each cell, hence consistent.
void CollectHistograms(const internal::HistogramLayout& layout,
                       const std::vector<internal::SeriesPtr>& series,
                       const std::vector<const uint64_t*>& shards,
                       std::vector<HistogramSample>* out) {
  const uint32_t n_slots = layout.num_slots();
  const auto& slots = layout.slots();
  const size_t n_classic = layout.boundaries().size() + 1;
  int32_t i_lo = INT32_MAX, i_hi = INT32_MIN;
  for (const auto& s : slots) {
    if (s.sign != 0) i_lo = std::min(i_lo, s.native_index), i_hi = std::max(i_hi, s.native_index);
  }
  if (i_lo > i_hi) i_lo = i_hi = 0;
  // Native counts by sign, reused across series; only the touched range is cleared again.
  std::vector<uint64_t> native[2] = {std::vector<uint64_t>(i_hi - i_lo + 1),
                                     std::vector<uint64_t>(i_hi - i_lo + 1)};
  out->resize(series.size());
  for (size_t k = 0; k < series.size(); ++k) {
    HistogramSample& h = (*out)[k];
    h.schema = layout.schema();
    h.zero_threshold = layout.zero_threshold();
    h.cumulative.assign(n_classic, 0);
    int32_t lo[2] = {INT32_MAX, INT32_MAX}, hi[2] = {-1, -1};
    for (const uint64_t* shard : shards) {
      const uint64_t* block = shard + series[k]->first_cell;
      for (uint32_t slot = 0; slot < n_slots; ++slot) {
        const uint64_t c = internal::CellLoad(block, 2 * slot);
        if (c == 0) continue;  // a sum is read only with its count, so the two stay consistent
        h.count += c;
        h.sum += internal::BitsToDouble(internal::CellLoad(block, 2 * slot + 1));
        const auto& info = slots[slot];
        h.cumulative[info.classic] += c;
        if (info.sign == 0) {
          h.zero_count += c;
          continue;
        }
        const int side = info.sign > 0;
        const int32_t r = info.native_index - i_lo;
        native[side][r] += c;
        lo[side] = std::min(lo[side], r);
        hi[side] = std::max(hi[side], r);
      }
    }
    for (size_t c = 1; c < n_classic; ++c) h.cumulative[c] += h.cumulative[c - 1];
    h.positive = ToSpans(i_lo, native[1], lo[1], hi[1]);
    h.negative = ToSpans(i_lo, native[0], lo[0], hi[0]);
    for (int side = 0; side < 2; ++side) {
      for (int32_t r = lo[side]; r <= hi[side]; ++r) native[side][r] = 0;
    }
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<internal::FamilyImpl>> Registry::AddFamily(
    FamilyDesc desc, uint32_t cells, size_t max_series,
    const std::vector<std::string_view>& reserved) {
  if (absl::Status s = ValidateMetricName(desc.name); !s.ok()) return s;
  if (desc.name == kOverflowFamily) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric name \"", desc.name, "\" is used by the registry"));
  }
  if (!IsValidUtf8(desc.help)) {
    return absl::InvalidArgumentError(
        absl::StrCat("family \"", desc.name, "\": help text is not valid UTF-8"));
  }
  if (absl::Status s = ValidateLabels(desc.name, desc.label_names, desc.const_labels, reserved);
      !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(desc.name);
  if (it != families_.end()) {
    std::string diff = Difference(it->second->desc(), desc);
    if (diff.empty()) return it->second;
    return absl::AlreadyExistsError(absl::StrCat(
        "metric \"", desc.name, "\" is already registered with another definition: ", diff));
  }
  auto impl = std::make_shared<internal::FamilyImpl>(
      std::make_shared<const FamilyDesc>(std::move(desc)), cells, max_series);
  if (!impl->ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("metric cell space exhausted: cannot register \"", impl->desc().name, "\""));
  }
  families_.emplace(impl->desc().name, impl);
  return impl;
}

absl::StatusOr<CounterFamily> Registry::AddCounter(const FamilyOptions& o) {
  auto impl = AddFamily({o.name, o.help, MetricType::kCounter, o.label_names, o.const_labels},
                        Counter::kCells, o.max_series, {});
  if (!impl.ok()) return impl.status();
  return CounterFamily(*std::move(impl));
}

absl::StatusOr<GaugeFamily> Registry::AddGauge(const FamilyOptions& o) {
  auto impl = AddFamily({o.name, o.help, MetricType::kGauge, o.label_names, o.const_labels}, 0,
                        o.max_series, {});
  if (!impl.ok()) return impl.status();
  return GaugeFamily(*std::move(impl));
}

absl::StatusOr<HistogramFamily> Registry::AddHistogram(const FamilyOptions& o,
                                                       const HistogramConfig& config) {
  auto layout = internal::HistogramLayout::Create(config);
  if (!layout.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("histogram \"", o.name, "\": ", layout.status().message()));
  }
  FamilyDesc desc{o.name, o.help, MetricType::kHistogram, o.label_names, o.const_labels, *layout};
  auto impl = AddFamily(std::move(desc), (*layout)->num_cells(), o.max_series, {"le"});
  if (!impl.ok()) return impl.status();
  return HistogramFamily(*std::move(impl));
}

Registry::~Registry() {
  std::map<std::string, std::shared_ptr<internal::FamilyImpl>, std::less<>> families;
  {
    std::lock_guard<std::mutex> lock(mu_);
    families.swap(families_);
  }
  for (auto& [name, impl] : families) impl->RemoveAll();
}

absl::Status Registry::Remove(std::string_view name) {
  std::shared_ptr<internal::FamilyImpl> impl;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end())
      return absl::NotFoundError(absl::StrCat("no metric named \"", internal::AV(name), "\""));
    impl = std::move(it->second);
    families_.erase(it);
  }
  impl->RemoveAll();
  return absl::OkStatus();
}

Snapshot Registry::Collect() const {
  // One Collect at a time: two overlapping ones could otherwise finish out of order and hand a
  // caller a lower counter value than the one before.
  std::lock_guard<std::mutex> collect_lock(collect_mu_);
  std::vector<std::shared_ptr<internal::FamilyImpl>> families;
  {
    std::lock_guard<std::mutex> lock(mu_);
    families.reserve(families_.size());
    for (const auto& [name, impl] : families_) families.push_back(impl);
  }
  // Shards created after this point hold only writes that happened after it; leaving them out is
  // the same as collecting a moment earlier.
  const std::vector<const uint64_t*> shards = internal::AllShards();

  Snapshot snap;
  snap.families.reserve(families.size() + 1);
  FamilySnapshot overflow;
  for (const auto& impl : families) {
    FamilySnapshot& fs = snap.families.emplace_back();
    fs.desc = impl->desc_ptr();
    fs.series = impl->SortedSeries();
    const std::vector<internal::SeriesPtr>& series = *fs.series;
    fs.samples.resize(series.size());
    for (size_t i = 0; i < series.size(); ++i)
      fs.samples[i].label_values = &series[i]->label_values;
    switch (fs.desc->type) {
      case MetricType::kCounter:
        // Shard-major: each shard's cells are read in one pass.
        for (const uint64_t* shard : shards) {
          for (size_t i = 0; i < series.size(); ++i) {
            uint32_t c = series[i]->first_cell;
            fs.samples[i].int_value += internal::CellLoad(shard, c);
            fs.samples[i].value += internal::BitsToDouble(internal::CellLoad(shard, c + 1));
          }
        }
        break;
      case MetricType::kGauge:
        for (size_t i = 0; i < series.size(); ++i) {
          // Relaxed: a gauge reading needs only the cell's own coherence.
          fs.samples[i].value =
              internal::BitsToDouble(series[i]->gauge_bits.load(std::memory_order_relaxed));
        }
        break;
      case MetricType::kHistogram:
        CollectHistograms(*fs.desc->histogram, series, shards, &fs.histograms);
        break;
    }
    if (uint64_t d = impl->diverted(); d > 0) {
      auto values = std::make_shared<const std::vector<std::string>>(1, impl->desc().name);
      overflow.samples.push_back({values.get(), d, 0});
      overflow.owned_labels.push_back(std::move(values));
    }
  }
  if (!overflow.samples.empty()) {
    auto overflow_desc = std::make_shared<FamilyDesc>();
    overflow_desc->name = std::string(kOverflowFamily);
    overflow_desc->help =
        "Label sets diverted to a family's overflow series (over its series cap, or invalid).";
    overflow_desc->type = MetricType::kCounter;
    overflow_desc->label_names = {"family"};
    overflow.desc = std::move(overflow_desc);
    auto pos = std::lower_bound(
        snap.families.begin(), snap.families.end(), kOverflowFamily,
        [](const FamilySnapshot& f, std::string_view n) { return f.desc->name < n; });
    snap.families.insert(pos, std::move(overflow));
  }
  return snap;
}

}  // namespace metrics
