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

// Runs of non-zero counts, indices i_lo + r for r in [0, counts.size()).
NativeBuckets ToSpans(int32_t i_lo, const std::vector<uint64_t>& counts) {
  NativeBuckets out;
  int32_t next = 0;  // index just past the previous span
  bool first = true;
  for (size_t r = 0; r < counts.size(); ++r) {
    if (counts[r] == 0) continue;
    int32_t i = i_lo + static_cast<int32_t>(r);
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
  std::vector<uint64_t> counts(n_slots);
  std::vector<double> sums(n_slots);
  out->resize(series.size());
  for (size_t k = 0; k < series.size(); ++k) {
    std::fill(counts.begin(), counts.end(), 0);
    std::fill(sums.begin(), sums.end(), 0.0);
    const uint32_t base = series[k]->first_cell;
    for (const uint64_t* shard : shards) {
      for (uint32_t slot = 0; slot < n_slots; ++slot) {
        uint64_t c = internal::CellLoad(shard, base + 2 * slot);
        if (c == 0)
          continue;  // a slot's sum is read only with a count, so sum and count stay consistent
        counts[slot] += c;
        sums[slot] += internal::BitsToDouble(internal::CellLoad(shard, base + 2 * slot + 1));
      }
    }
    HistogramSample& h = (*out)[k];
    h.schema = layout.schema();
    h.zero_threshold = layout.zero_threshold();
    h.cumulative.assign(n_classic, 0);
    std::vector<uint64_t> pos(i_hi - i_lo + 1), neg(i_hi - i_lo + 1);
    for (uint32_t slot = 0; slot < n_slots; ++slot) {
      if (counts[slot] == 0) continue;
      const auto& info = slots[slot];
      h.count += counts[slot];
      h.sum += sums[slot];
      h.cumulative[info.classic] += counts[slot];
      if (info.sign > 0) {
        pos[info.native_index - i_lo] += counts[slot];
      } else if (info.sign < 0) {
        neg[info.native_index - i_lo] += counts[slot];
      } else {
        h.zero_count += counts[slot];
      }
    }
    for (size_t c = 1; c < n_classic; ++c) h.cumulative[c] += h.cumulative[c - 1];
    h.positive = ToSpans(i_lo, pos);
    h.negative = ToSpans(i_lo, neg);
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
  auto overflow_desc = std::make_shared<FamilyDesc>();
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
