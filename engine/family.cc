#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/histogram.h"
#include "engine/internal/cells.h"
#include "engine/internal/exemplar_slots.h"
#include "engine/internal/family.h"
#include "engine/validate.h"

namespace metrics::internal {
namespace {
// Family indices (slots of every thread's cache vector) are reused once a family is destroyed,
// which happens only after every thread cache let go of it: the vectors stay as long as the
// number of live families, however many short-lived registries come and go.
struct FamilyIndices {
  std::mutex mu;
  uint32_t next = 0;
  std::vector<uint32_t> free;

  static FamilyIndices& Get() {
    static FamilyIndices* f = new FamilyIndices();  // never destroyed: used at thread exit
    return *f;
  }
  uint32_t Take() {
    std::lock_guard<std::mutex> lock(mu);
    if (free.empty()) return next++;
    const uint32_t i = free.back();
    free.pop_back();
    return i;
  }
  // Runs in ~FamilyImpl: never throws (out of memory, the index is just not reused).
  void Give(uint32_t i) noexcept {
    std::lock_guard<std::mutex> lock(mu);
    try {
      free.push_back(i);
    } catch (const std::bad_alloc&) {
    }
  }
};
}  // namespace

constinit thread_local ThreadCaches* ThreadCaches::tls_ = nullptr;

ThreadCaches* ThreadCaches::Create() {
  static const pthread_key_t key = [] {
    pthread_key_t k;
    if (pthread_key_create(&k, &ThreadCaches::Destroy) != 0) std::abort();
    return k;
  }();
  tls_ = new ThreadCaches();
  pthread_setspecific(key, tls_);
  return tls_;
}

void ThreadCaches::Destroy(void* caches) {
  tls_ = nullptr;
  delete static_cast<ThreadCaches*>(caches);
}

SeriesCore::~SeriesCore() {
  if (num_cells > 0) CellAllocator::Free(first_cell, num_cells);
  // Relaxed: the last reference is going away, so no thread can be installing or reading them.
  delete exemplars.load(std::memory_order_relaxed);
}

FamilyImpl::FamilyImpl(std::shared_ptr<const FamilyDesc> desc, uint32_t cells_per_series,
                       size_t max_series)
    : desc_(std::move(desc)),
      cells_per_series_(cells_per_series),
      max_series_(std::max<size_t>(max_series, 1)),
      index_(FamilyIndices::Get().Take()) {
  if (!desc_->label_names.empty()) return;  // the overflow series comes with the first diversion
  // A family without labels has exactly one series; it is reported (as 0) from registration on,
  // like client_golang's plain Counter, and wrong-arity lookups land in it.
  std::lock_guard<std::mutex> lock(mu_);
  overflow_ = Create({});
  if (overflow_ != nullptr) {
    series_.emplace(overflow_->label_values, overflow_);
    overflow_listed_ = true;
  }
}

bool FamilyImpl::ok() const {
  if (desc_->label_names.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    return overflow_ != nullptr;
  }
  return true;
}

FamilyImpl::~FamilyImpl() { FamilyIndices::Get().Give(index_); }

uint32_t FamilyIndex(const FamilyImpl& f) { return f.index(); }
const std::atomic<uint64_t>& FamilySeriesEpoch(const FamilyImpl& f) { return f.series_epoch_; }
bool FamilyRemoved(const FamilyImpl& f) { return f.removed(); }
SeriesPtr FamilyLookup(FamilyImpl& f, LabelValues values, absl::Status* why) {
  return f.Lookup(values, why);
}
absl::StatusOr<SeriesPtr> FamilyBind(FamilyImpl& f, LabelValues values) { return f.Bind(values); }
absl::Status FamilyRemove(FamilyImpl& f, LabelValues values) { return f.Remove(values); }
const FamilyDesc& FamilyDescOf(const FamilyImpl& f) { return f.desc(); }
uint64_t FamilyDiverted(const FamilyImpl& f) { return f.diverted(); }
size_t FamilySize(const FamilyImpl& f) { return f.size(); }

absl::Status FamilyImpl::Check(LabelValues values) const {
  if (values.size() != desc_->label_names.size()) {
    return absl::InvalidArgumentError(absl::StrCat("family \"", desc_->name, "\" has ",
                                                   desc_->label_names.size(), " label names but ",
                                                   values.size(), " label values were given"));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!IsValidUtf8(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("family \"", desc_->name, "\": the value of label \"", desc_->label_names[i],
                       "\" is not valid UTF-8"));
    }
  }
  return absl::OkStatus();
}

SeriesPtr FamilyImpl::Create(LabelValues values) {
  uint32_t first = 0;
  if (cells_per_series_ > 0) {
    first = CellAllocator::Allocate(cells_per_series_);
    if (first == CellAllocator::kNoCells) return nullptr;
  }
  return std::make_shared<SeriesCore>(std::vector<std::string>(values.begin(), values.end()), first,
                                      cells_per_series_, desc_->histogram);
}

SeriesPtr FamilyImpl::DivertLocked() {
  ++diverted_;
  if (!overflow_listed_) {
    const std::vector<std::string_view> values(desc_->label_names.size(), kOverflowLabelValue);
    // A real series may already carry the overflow label values; then it is the overflow series.
    // Else the overflow series is made now, on the first diversion, not at registration: a family
    // whose label sets stay under the cap never pays for it.
    if (auto it = series_.find(LabelValues(values)); it != series_.end()) {
      overflow_ = it->second;
    } else {
      if (overflow_ == nullptr) overflow_ = Create(values);
      // No cells left even for the overflow series: this write goes to the sink (lost, but the
      // label set is counted in diverted_); the next diversion tries again.
      if (overflow_ == nullptr) return nullptr;
      series_.emplace(overflow_->label_values, overflow_);
    }
    overflow_listed_ = true;
    dirty_ = true;
  }
  return overflow_;
}

SeriesPtr FamilyImpl::Lookup(LabelValues values, absl::Status* why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (removed_.load(std::memory_order_relaxed)) return nullptr;  // written under mu_
  auto it = series_.find(values);
  if (it != series_.end()) return it->second;
  absl::Status s = Check(values);
  assert(s.ok() && "WithLabelValues: invalid label values (diverted to the overflow series)");
  if (s.ok() && series_.size() - (overflow_listed_ ? 1 : 0) >= max_series_) {
    s = absl::ResourceExhaustedError(
        absl::StrCat("family \"", desc_->name, "\" is at its cap of ", max_series_, " series"));
  }
  if (s.ok()) {
    SeriesPtr created = Create(values);
    if (created != nullptr) {
      series_.emplace(created->label_values, created);
      dirty_ = true;
      return created;
    }
    s = absl::ResourceExhaustedError("metric cell space exhausted");
  }
  if (why != nullptr) *why = s;
  return DivertLocked();
}

absl::StatusOr<SeriesPtr> FamilyImpl::Bind(LabelValues values) {
  if (absl::Status s = Check(values); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  if (removed_.load(std::memory_order_relaxed)) {
    return absl::FailedPreconditionError(
        absl::StrCat("family \"", desc_->name, "\" was removed from its registry"));
  }
  auto it = series_.find(values);
  if (it != series_.end()) return it->second;
  if (series_.size() - (overflow_listed_ ? 1 : 0) >= max_series_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("family \"", desc_->name, "\" is at its cap of ", max_series_, " series"));
  }
  SeriesPtr created = Create(values);
  if (created == nullptr) return absl::ResourceExhaustedError("metric cell space exhausted");
  series_.emplace(created->label_values, created);
  dirty_ = true;
  return created;
}

absl::Status FamilyImpl::Remove(LabelValues values) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = series_.find(values);
    if (it == series_.end()) {
      return absl::NotFoundError(absl::StrCat("family \"", desc_->name, "\" has no such series"));
    }
    // Release pairs with the acquire load in FamilyCache::Purge.
    it->second->removed.store(true, std::memory_order_release);
    if (it->second == overflow_) {
      overflow_listed_ = false;
      overflow_ = nullptr;  // the next diversion makes a fresh one, starting from zero
    }
    series_.erase(it);
    dirty_ = true;
  }
  // Only this family's caches purge (each checks its family's epoch on lookup). Release pairs
  // with the acquire load in FamilyCache::Find: a thread seeing the new epoch sees the flag above.
  series_epoch_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

void FamilyImpl::RemoveAll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [values, series] : series_) series->removed.store(true, std::memory_order_release);
    series_.clear();
    overflow_listed_ = false;
    dirty_ = true;
    // Release pairs with the acquire load in removed() (FamilyCache::Purge).
    removed_.store(true, std::memory_order_release);
  }
  // Family removals are rare (Registry::Remove, a registry's destruction): they bump the
  // process-wide epoch, and each thread then drops its caches of removed families on its next
  // lookup, whatever family it looks up. Release pairs with the acquire load in ThreadCaches::For.
  removal_epoch.fetch_add(1, std::memory_order_release);
}

uint64_t FamilyImpl::diverted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return diverted_;
}

size_t FamilyImpl::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return series_.size();
}

std::shared_ptr<const std::vector<SeriesPtr>> FamilyImpl::SortedSeries() {
  std::lock_guard<std::mutex> lock(mu_);
  if (dirty_) {
    auto v = std::make_shared<std::vector<SeriesPtr>>();
    v->reserve(series_.size());
    for (const auto& [values, series] : series_) v->push_back(series);
    sorted_ = std::move(v);
    dirty_ = false;
  }
  return sorted_;
}

}  // namespace metrics::internal

namespace metrics::internal {

const HistogramLayout& DefaultHistogramLayout() {
  // Never destroyed (handles may outlive static destruction); held by a static pointer so that
  // LeakSanitizer sees it reachable.
  static const std::shared_ptr<const HistogramLayout>* layout = [] {
    auto l = HistogramLayout::Create(HistogramConfig{});
    if (!l.ok() || (*l)->num_cells() > kSinkCells) {
      std::fprintf(stderr, "metrics: the default histogram layout does not fit the sink block\n");
      std::abort();
    }
    return new std::shared_ptr<const HistogramLayout>(*std::move(l));
  }();
  return **layout;
}

}  // namespace metrics::internal

namespace metrics {

void Histogram::ObserveSlow(double v) {
  uint64_t* slot = internal::ThreadCells() + base_ + 2 * size_t{layout_->Slot(v)};
  internal::CellAdd(slot, 0, 1);
  internal::CellAddDouble(slot, 1, v);
}

}  // namespace metrics
