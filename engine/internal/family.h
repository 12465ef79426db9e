// A family's series index: shared, mutex-guarded, the slow path behind the per-thread lookup caches
// of engine/internal/family_cache.h. Included by the engine's .cc files only, so that users of
// engine/registry.h do not compile its btree and mutex.
//
// Removing a series bumps its family's epoch (release); a thread looking up in that family and
// seeing a new epoch (acquire) first drops its cached handles of the family's removed series.
// Removing a family (Registry::Remove, or the registry's destruction) bumps a process-wide epoch:
// a thread seeing it drops its caches of removed families on its next lookup in any family. So a
// removed series is freed once every handle and every thread cache that held it has let go
// (threads that never look up again let go at exit), and one Remove costs a purge only of the
// caches of its own family.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/internal/family_cache.h"
#include "engine/internal/series.h"
#include "engine/snapshot.h"

namespace metrics::internal {

struct LabelsLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n; ++i) {
      int c = std::string_view(a[i]).compare(std::string_view(b[i]));
      if (c != 0) return c < 0;
    }
    return a.size() < b.size();
  }
};

class FamilyImpl {
 public:
  FamilyImpl(std::shared_ptr<const FamilyDesc> desc, uint32_t cells_per_series, size_t max_series);
  ~FamilyImpl();

  const FamilyDesc& desc() const { return *desc_; }
  const std::shared_ptr<const FamilyDesc>& desc_ptr() const { return desc_; }
  uint32_t index() const { return index_; }
  uint32_t cells_per_series() const { return cells_per_series_; }
  size_t max_series() const { return max_series_; }

  // Finds or creates the series. On an invalid label set, a full family or exhausted cells returns
  // the overflow series (made on the first diversion) and counts the diversion, with the reason in
  // *why (if given). A removed family returns nullptr, and so does a diversion when the cells
  // cannot hold the overflow series (*why says so; the caller writes to the sink).
  SeriesPtr Lookup(LabelValues values, absl::Status* why);
  // Like Lookup, but returns the error instead of diverting.
  absl::StatusOr<SeriesPtr> Bind(LabelValues values);
  absl::Status Remove(LabelValues values);
  // Drops every series and refuses new ones: the family has left its registry.
  void RemoveAll();
  bool removed() const { return removed_.load(std::memory_order_acquire); }
  // Bumped by every Remove of a series of this family (acquire pairs with its release).
  uint64_t series_epoch() const { return series_epoch_.load(std::memory_order_acquire); }
  // False when the cell space could not hold the one series of a family without labels: the
  // family is unusable. (A labelled family allocates nothing until a label set is used.)
  bool ok() const;

  // Label sets diverted to the overflow series so far.
  uint64_t diverted() const;
  size_t size() const;

  // The current series, sorted by label values; rebuilt only when the set changed since the last
  // call.
  std::shared_ptr<const std::vector<SeriesPtr>> SortedSeries();

 private:
  SeriesPtr Create(LabelValues values);  // requires mu_; nullptr when cells are exhausted
  absl::Status Check(LabelValues values) const;
  SeriesPtr DivertLocked();  // requires mu_
  friend const std::atomic<uint64_t>& FamilySeriesEpoch(const FamilyImpl& f);

  const std::shared_ptr<const FamilyDesc> desc_;
  const uint32_t cells_per_series_;
  const size_t max_series_;
  const uint32_t index_;
  std::atomic<bool> removed_{false};
  std::atomic<uint64_t> series_epoch_{0};

  mutable std::mutex mu_;
  absl::btree_map<std::vector<std::string>, SeriesPtr, LabelsLess> series_;
  std::shared_ptr<const std::vector<SeriesPtr>> sorted_;
  bool dirty_ = true;
  // Label-less family: its one series, from registration on. Labelled: null until the first
  // diversion, then the overflow series (listed in series_ while overflow_listed_).
  SeriesPtr overflow_;
  bool overflow_listed_ = false;
  uint64_t diverted_ = 0;
};

}  // namespace metrics::internal
