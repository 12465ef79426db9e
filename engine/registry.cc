#include "engine/registry.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/internal/cells.h"
#include "engine/internal/exemplar_slots.h"
#include "engine/internal/family.h"
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
    case MetricType::kInfo:
      return "info";
  }
  return "unknown";
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The names a family is exposed under, in either format (the rule is in registry.h).
std::vector<std::string> ClaimedNames(const FamilyDesc& d) {
  const std::string& n = d.name;
  switch (d.type) {
    case MetricType::kCounter:
      if (EndsWith(n, "_total")) return {n, n.substr(0, n.size() - 6)};
      return {n, n + "_total"};
    case MetricType::kGauge:
      return {n};
    case MetricType::kHistogram:
      return {n, n + "_bucket", n + "_sum", n + "_count"};
    case MetricType::kInfo:
      return {n, n + "_info"};
  }
  return {n};
}

// The checks every registration shares: name, help, labels, unit and the type's naming rules.
absl::Status ValidateDesc(const FamilyDesc& desc, const std::vector<std::string_view>& reserved) {
  if (absl::Status s = ValidateMetricName(desc.name); !s.ok()) return s;
  if (!IsValidUtf8(desc.help)) {
    return absl::InvalidArgumentError(
        absl::StrCat("family \"", desc.name, "\": help text is not valid UTF-8"));
  }
  if (absl::Status s = ValidateLabels(desc.name, desc.label_names, desc.const_labels, reserved);
      !s.ok()) {
    return s;
  }
  if (desc.type == MetricType::kInfo && EndsWith(desc.name, "_info")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "info \"", desc.name, "\": give the name without \"_info\" (it is exposed as \"", desc.name,
        "_info\")"));
  }
  if (!desc.unit.empty()) {
    if (desc.type == MetricType::kInfo) {
      return absl::InvalidArgumentError(
          absl::StrCat("info \"", desc.name, "\": info families have no unit"));
    }
    for (char c : desc.unit) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == ':')) {
        return absl::InvalidArgumentError(absl::StrCat("family \"", desc.name, "\": unit \"",
                                                       desc.unit,
                                                       "\" has a character outside [a-zA-Z0-9_:]"));
      }
    }
    std::string_view om_name = desc.name;
    if (desc.type == MetricType::kCounter && EndsWith(om_name, "_total")) om_name.remove_suffix(6);
    if (!EndsWith(om_name, absl::StrCat("_", desc.unit))) {
      return absl::InvalidArgumentError(
          absl::StrCat("family \"", desc.name, "\": OpenMetrics requires the name",
                       desc.type == MetricType::kCounter ? " (without \"_total\")" : "",
                       " to end with \"_", desc.unit, "\" for unit \"", desc.unit, "\""));
    }
  }
  return absl::OkStatus();
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
  if (a.unit != b.unit) return absl::StrCat("unit \"", a.unit, "\" vs \"", b.unit, "\"");
  if (a.histogram && b.histogram && !(a.histogram->config() == b.histogram->config())) {
    return "histogram buckets, schema or range differ";
  }
  return "";
}

constexpr std::string_view kOverflowFamily = "metrics_cardinality_overflow_total";

// Names the registry exposes itself; a registration claiming any of them is refused.
absl::Status CheckReserved(const FamilyDesc& desc) {
  for (std::string_view own : {kOverflowFamily, kShardAllocationFailuresFamily}) {
    FamilyDesc d{.name = std::string(own), .type = MetricType::kCounter};
    for (const std::string& mine : ClaimedNames(desc)) {
      for (const std::string& theirs : ClaimedNames(d)) {
        if (mine == theirs) {
          return absl::InvalidArgumentError(absl::StrCat("metric name \"", desc.name,
                                                         "\" clashes with \"", internal::AV(own),
                                                         "\", a name used by the registry itself"));
        }
      }
    }
  }
  return absl::OkStatus();
}

// The registry whose callbacks (funcs, collectors) the calling thread is running, if any.
thread_local const Registry* tls_collecting = nullptr;

struct CollectingScope {
  explicit CollectingScope(const Registry* r) : saved(std::exchange(tls_collecting, r)) {}
  ~CollectingScope() { tls_collecting = saved; }
  const Registry* saved;
};

// Whether a collector's family fits its declaration: the writers index by these shapes.
bool WellFormed(const FamilySnapshot& f, const FamilyDesc& declared) {
  for (const SeriesSample& s : f.samples) {
    if (s.label_values == nullptr || s.label_values->size() != declared.label_names.size()) {
      return false;
    }
  }
  if (declared.type != MetricType::kHistogram) return true;
  if (declared.histogram == nullptr || f.histograms.size() != f.samples.size()) return false;
  for (const HistogramSample& h : f.histograms) {
    if (h.cumulative.size() != declared.histogram->boundaries().size() + 1) return false;
  }
  return true;
}

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
  const bool native_part = layout.native();  // classic-only: every slot is sign 0, not "zero"
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
    h.native = native_part;
    h.schema = native_part ? layout.schema() : 0;
    h.zero_threshold = native_part ? layout.zero_threshold() : 0;
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
          if (native_part) h.zero_count += c;
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

absl::Status Registry::NotInCallback(std::string_view what) const {
  if (tls_collecting != this) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      internal::AV(what), " called from a func or collector callback of the same registry"));
}

absl::Status Registry::CheckClaimsLocked(const FamilyDesc& desc) const {
  for (const std::string& name : ClaimedNames(desc)) {
    auto it = claims_.find(name);
    if (it == claims_.end()) continue;
    if (it->second == desc.name) {
      return absl::AlreadyExistsError(
          absl::StrCat("metric \"", desc.name, "\" is already registered with another definition"));
    }
    return absl::AlreadyExistsError(
        absl::StrCat("metric \"", desc.name, "\" (", TypeName(desc.type), ") clashes with \"",
                     it->second, "\": both are exposed as \"", name, "\""));
  }
  return absl::OkStatus();
}

void Registry::ClaimLocked(const FamilyDesc& desc) {
  for (std::string& name : ClaimedNames(desc)) claims_.emplace(std::move(name), desc.name);
}

void Registry::UnclaimLocked(const FamilyDesc& desc) {
  for (const std::string& name : ClaimedNames(desc)) {
    auto it = claims_.find(name);
    if (it != claims_.end() && it->second == desc.name) claims_.erase(it);
  }
}

absl::StatusOr<std::shared_ptr<internal::FamilyImpl>> Registry::AddFamily(
    FamilyDesc desc, uint32_t cells, size_t max_series,
    const std::vector<std::string_view>& reserved) {
  if (absl::Status s = NotInCallback("registration"); !s.ok()) return s;
  if (absl::Status s = ValidateDesc(desc, reserved); !s.ok()) return s;
  if (absl::Status s = CheckReserved(desc); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(desc.name);
  if (it != families_.end()) {
    std::string diff = Difference(it->second->desc(), desc);
    if (diff.empty()) return it->second;
    return absl::AlreadyExistsError(absl::StrCat(
        "metric \"", desc.name, "\" is already registered with another definition: ", diff));
  }
  if (absl::Status s = CheckClaimsLocked(desc); !s.ok()) return s;
  auto impl = std::make_shared<internal::FamilyImpl>(
      std::make_shared<const FamilyDesc>(std::move(desc)), cells, max_series);
  if (!impl->ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("metric cell space exhausted: cannot register \"", impl->desc().name, "\""));
  }
  families_.emplace(impl->desc().name, impl);
  ClaimLocked(impl->desc());
  return impl;
}

absl::Status Registry::AddFunc(FamilyDesc desc, std::function<double()> read) {
  if (absl::Status s = NotInCallback("registration"); !s.ok()) return s;
  if (!desc.label_names.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "func family \"", desc.name, "\" has one series: constant labels only, no label names"));
  }
  if (!read) {
    return absl::InvalidArgumentError(
        absl::StrCat("func family \"", desc.name, "\": no callback given"));
  }
  if (absl::Status s = ValidateDesc(desc, {}); !s.ok()) return s;
  if (absl::Status s = CheckReserved(desc); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s = CheckClaimsLocked(desc); !s.ok()) return s;
  auto f = std::make_shared<FuncFamily>(
      FuncFamily{std::make_shared<const FamilyDesc>(std::move(desc)), std::move(read)});
  ClaimLocked(*f->desc);
  funcs_.emplace(f->desc->name, std::move(f));
  return absl::OkStatus();
}

absl::Status Registry::AddGaugeFunc(const FamilyOptions& o, std::function<double()> read) {
  return AddFunc({.name = o.name,
                  .help = o.help,
                  .type = MetricType::kGauge,
                  .label_names = o.label_names,
                  .const_labels = o.const_labels,
                  .unit = o.unit},
                 std::move(read));
}

absl::Status Registry::AddCounterFunc(const FamilyOptions& o, std::function<double()> read) {
  return AddFunc({.name = o.name,
                  .help = o.help,
                  .type = MetricType::kCounter,
                  .label_names = o.label_names,
                  .const_labels = o.const_labels,
                  .unit = o.unit},
                 std::move(read));
}

absl::Status Registry::AddCollector(std::shared_ptr<const Collector> collector) {
  if (absl::Status s = NotInCallback("registration"); !s.ok()) return s;
  if (collector == nullptr) return absl::InvalidArgumentError("null collector");
  auto entry = std::make_shared<CollectorEntry>();
  entry->collector = collector;
  for (FamilyDesc& d : collector->Describe()) {
    std::vector<std::string_view> reserved;
    if (d.type == MetricType::kHistogram) {
      reserved.push_back("le");
      if (d.histogram == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("collector histogram \"", d.name, "\" declares no bucket layout"));
      }
    }
    if (absl::Status s = ValidateDesc(d, reserved); !s.ok()) return s;
    if (absl::Status s = CheckReserved(d); !s.ok()) return s;
    entry->descs.push_back(std::make_shared<const FamilyDesc>(std::move(d)));
  }
  std::sort(entry->descs.begin(), entry->descs.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& c : collectors_) {
    if (c->collector == collector) {
      return absl::AlreadyExistsError("this collector is already registered");
    }
  }
  // Claimed one by one, so that two declared families that clash with each other are caught too;
  // undone on error.
  for (size_t i = 0; i < entry->descs.size(); ++i) {
    if (absl::Status s = CheckClaimsLocked(*entry->descs[i]); !s.ok()) {
      for (size_t j = 0; j < i; ++j) UnclaimLocked(*entry->descs[j]);
      return s;
    }
    ClaimLocked(*entry->descs[i]);
  }
  collectors_.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::Status Registry::RemoveCollector(const Collector* collector) {
  if (absl::Status s = NotInCallback("RemoveCollector"); !s.ok()) return s;
  std::shared_ptr<const CollectorEntry> gone;
  {
    // The scrape mutex first: once this returns, no Collect is still running the collector.
    std::lock_guard<std::mutex> collect_lock(collect_mu_);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find_if(collectors_.begin(), collectors_.end(),
                           [&](const auto& c) { return c->collector.get() == collector; });
    if (it == collectors_.end()) return absl::NotFoundError("collector not registered");
    gone = std::move(*it);
    collectors_.erase(it);
    for (const auto& d : gone->descs) UnclaimLocked(*d);
  }
  return absl::OkStatus();  // `gone` may hold the last reference: destroyed outside the locks
}

absl::StatusOr<CounterFamily> Registry::AddCounter(const FamilyOptions& o) {
  auto impl = AddFamily({.name = o.name,
                         .help = o.help,
                         .type = MetricType::kCounter,
                         .label_names = o.label_names,
                         .const_labels = o.const_labels,
                         .unit = o.unit},
                        Counter::kCells, o.max_series, {});
  if (!impl.ok()) return impl.status();
  return CounterFamily(*std::move(impl));
}

absl::StatusOr<GaugeFamily> Registry::AddGauge(const FamilyOptions& o) {
  auto impl = AddFamily({.name = o.name,
                         .help = o.help,
                         .type = MetricType::kGauge,
                         .label_names = o.label_names,
                         .const_labels = o.const_labels,
                         .unit = o.unit},
                        0, o.max_series, {});
  if (!impl.ok()) return impl.status();
  return GaugeFamily(*std::move(impl));
}

absl::StatusOr<InfoFamily> Registry::AddInfo(const FamilyOptions& o) {
  auto impl = AddFamily({.name = o.name,
                         .help = o.help,
                         .type = MetricType::kInfo,
                         .label_names = o.label_names,
                         .const_labels = o.const_labels,
                         .unit = o.unit},
                        0, o.max_series, {});
  if (!impl.ok()) return impl.status();
  return InfoFamily(*std::move(impl));
}

absl::StatusOr<HistogramFamily> Registry::AddHistogram(const FamilyOptions& o,
                                                       const HistogramConfig& config) {
  auto layout = internal::HistogramLayout::Create(config);
  if (!layout.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("histogram \"", o.name, "\": ", layout.status().message()));
  }
  FamilyDesc desc{.name = o.name,
                  .help = o.help,
                  .type = MetricType::kHistogram,
                  .label_names = o.label_names,
                  .const_labels = o.const_labels,
                  .histogram = *layout,
                  .unit = o.unit};
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
  if (absl::Status s = NotInCallback("Remove"); !s.ok()) return s;
  std::shared_ptr<internal::FamilyImpl> impl;
  std::shared_ptr<const FuncFamily> func;
  {
    // The scrape mutex first: once this returns, no Collect is still running a removed func.
    std::lock_guard<std::mutex> collect_lock(collect_mu_);
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = families_.find(name); it != families_.end()) {
      impl = std::move(it->second);
      families_.erase(it);
      UnclaimLocked(impl->desc());
    } else if (auto f = funcs_.find(name); f != funcs_.end()) {
      func = std::move(f->second);
      funcs_.erase(f);
      UnclaimLocked(*func->desc);
    } else {
      return absl::NotFoundError(absl::StrCat("no metric named \"", internal::AV(name), "\""));
    }
  }
  if (impl != nullptr) impl->RemoveAll();
  return absl::OkStatus();  // `func` may hold the callback's last reference: freed unlocked
}

Snapshot Registry::Collect() const {
  if (tls_collecting == this) {
    assert(false && "Registry::Collect called from one of its own func or collector callbacks");
    return Snapshot();
  }
  // One Collect at a time: two overlapping ones could otherwise finish out of order and hand a
  // caller a lower counter value than the one before.
  std::lock_guard<std::mutex> collect_lock(collect_mu_);
  std::vector<std::shared_ptr<internal::FamilyImpl>> families;
  std::vector<std::shared_ptr<const FuncFamily>> funcs;
  std::vector<std::shared_ptr<const CollectorEntry>> collectors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    families.reserve(families_.size());
    for (const auto& [name, impl] : families_) families.push_back(impl);
    funcs.reserve(funcs_.size());
    for (const auto& [name, f] : funcs_) funcs.push_back(f);
    collectors = collectors_;
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
      case MetricType::kInfo:
        for (SeriesSample& x : fs.samples) x.int_value = 1;
        break;
    }
    if (fs.desc->type == MetricType::kCounter || fs.desc->type == MetricType::kHistogram) {
      for (size_t i = 0; i < series.size(); ++i) {
        // Acquire: pairs with the release CAS that installs them (RecordExemplar in exemplar.cc).
        if (const auto* x = series[i]->exemplars.load(std::memory_order_acquire)) {
          x->Read(static_cast<uint32_t>(i), &fs.exemplars);
        }
      }
    }
    if (uint64_t d = impl->diverted(); d > 0) {
      auto values = std::make_shared<const std::vector<std::string>>(1, impl->desc().name);
      overflow.samples.push_back({values.get(), d, 0});
      overflow.owned_labels.push_back(std::move(values));
    }
  }

  // Scrape-time families, outside mu_ (registration goes on) but under collect_mu_ (Remove waits).
  {
    CollectingScope scope(this);
    for (const auto& f : funcs) {
      double v;
      try {
        v = f->read();
      } catch (...) {
        continue;  // documented: the family sits this scrape out
      }
      AppendSample(AppendFamily(snap.families, f->desc), {}, v);
    }
    std::vector<FamilySnapshot> out;
    for (const auto& c : collectors) {
      out.clear();
      try {
        c->collector->Collect(out);
      } catch (...) {
        continue;
      }
      for (FamilySnapshot& f : out) {
        auto d = f.desc == nullptr
                     ? c->descs.end()
                     : std::lower_bound(c->descs.begin(), c->descs.end(), f.desc->name,
                                        [](const auto& a, const auto& n) { return a->name < n; });
        const bool ok = d != c->descs.end() && (*d)->name == f.desc->name && WellFormed(f, **d);
        assert(ok && "Collector::Collect: a family not declared by Describe, or malformed");
        if (!ok) continue;
        f.desc = *d;
        snap.families.push_back(std::move(f));
      }
    }
  }
  std::stable_sort(
      snap.families.begin(), snap.families.end(),
      [](const FamilySnapshot& a, const FamilySnapshot& b) { return a.desc->name < b.desc->name; });
  // A collector that sent a family twice: keep the first.
  snap.families.erase(std::unique(snap.families.begin(), snap.families.end(),
                                  [](const FamilySnapshot& a, const FamilySnapshot& b) {
                                    return a.desc->name == b.desc->name;
                                  }),
                      snap.families.end());

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
  if (internal::ShardAllocationFailures() > 0) AppendShardAllocationFailures(&snap);
  return snap;
}

void AppendShardAllocationFailures(Snapshot* snap) {
  auto pos = std::lower_bound(
      snap->families.begin(), snap->families.end(), kShardAllocationFailuresFamily,
      [](const FamilySnapshot& f, std::string_view n) { return f.desc->name < n; });
  if (pos != snap->families.end() && pos->desc->name == kShardAllocationFailuresFamily) return;
  static const std::shared_ptr<const FamilyDesc>* desc =
      new std::shared_ptr<const FamilyDesc>(std::make_shared<const FamilyDesc>(FamilyDesc{
          .name = std::string(kShardAllocationFailuresFamily),
          .help = "Threads that could not map a metrics shard; their metric writes are lost.",
          .type = MetricType::kCounter}));
  FamilySnapshot f;
  f.desc = *desc;
  AppendSample(f, {}, 0).int_value = internal::ShardAllocationFailures();
  snap->families.insert(pos, std::move(f));
}

}  // namespace metrics
